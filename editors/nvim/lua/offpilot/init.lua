-- offpilot for Neovim: starts `offpilot serve` through vim.lsp and shows its inline
-- completions as ghost text. On Neovim 0.12+ it can hand the UI to vim.lsp.inline_completion.
local config = require('offpilot.config')
local ghost = require('offpilot.ghost')

local M = {}
local uv = vim.uv or vim.loop
local NAME = 'offpilot'
local INLINE = 'textDocument/inlineCompletion'

M.state = { status = 'stopped', message = '' } -- the server's last offpilot/status
M.last_latency_ms = nil -- request sent -> ghost text drawn, for the last suggestion

local s = nil -- the suggestion on screen: {buf,row,col,after,items,index,text,shown,accepted}
local pending = {} -- {client, id} of the request in flight
local timer = nil

local function builtin()
  return config.options.builtin ~= false and vim.lsp.inline_completion ~= nil
end
M.builtin = builtin

local function client_for(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = NAME })[1]
end

local function event(buf, extra)
  return vim.tbl_extend('force', { uri = vim.uri_from_bufnr(buf), languageId = vim.bo[buf].filetype }, extra or {})
end

local function notify(buf, method, extra)
  local client = client_for(buf)
  if client then client:notify(method, event(buf, extra)) end
end

local function cancel_pending()
  if timer then timer:stop() end
  if pending.client and pending.id then pending.client:cancel_request(pending.id) end
  pending = {}
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function in_insert_mode()
  return vim.api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

--- Forget the suggestion; `reason` 'reject' reports it to the server's statistics.
local function clear(reason)
  if not s then return end
  if reason == 'reject' and not s.accepted then notify(s.buf, 'offpilot/didRejectCompletion') end
  ghost.clear(s.buf)
  s = nil
end

local function draw()
  ghost.draw(s.buf, s.row, s.col, s.text, config.options.hl_group)
  if s.shown ~= s.text then
    s.shown = s.text
    notify(s.buf, 'offpilot/didShowCompletion', { text = s.text })
  end
end

--- The text an item adds after the cursor (its range may start before the cursor).
local function text_after_cursor(item, line, col, encoding)
  local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText or ''
  local r = item.range
  if r and r.start.line == r['end'].line then
    local start = vim.str_byteindex(line, encoding, r.start.character, false)
    if start < col then
      local typed = line:sub(start + 1, col)
      if text:sub(1, #typed) ~= typed then return nil end
      text = text:sub(#typed + 1)
    end
  end
  return text ~= '' and text or nil
end

local function on_result(buf, row, col, tick, t0, result, encoding)
  if vim.api.nvim_get_current_buf() ~= buf or not in_insert_mode() then return end
  if vim.api.nvim_buf_get_changedtick(buf) ~= tick then return end
  local r, c = cursor()
  if r ~= row or c ~= col then return end
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  local texts = {}
  for _, item in ipairs(result.items or result) do
    texts[#texts + 1] = text_after_cursor(item, line, col, encoding)
  end
  if #texts == 0 then return end
  clear('reject')
  s = { buf = buf, row = row, col = col, after = line:sub(col + 1), items = texts, index = 1, text = texts[1] }
  draw()
  M.last_latency_ms = (uv.hrtime() - t0) / 1e6
end

--- Ask the server for a completion at the cursor now.
function M.request(invoked)
  local buf = vim.api.nvim_get_current_buf()
  local client = client_for(buf)
  if not client or not config.language_enabled(vim.bo[buf].filetype) then return end
  cancel_pending()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = invoked and 1 or 2 } -- Invoked / Automatic
  local row, col = cursor()
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local t0 = uv.hrtime()
  local ok, id
  ok, id = client:request(INLINE, params, function(err, result)
    if pending.id == id then pending = {} end
    if err or not result then return end
    on_result(buf, row, col, tick, t0, result, client.offset_encoding)
  end, buf)
  if ok then pending = { client = client, id = id } end
end

local function schedule()
  cancel_pending()
  timer = timer or uv.new_timer()
  timer:start(config.options.debounce_ms, 0, vim.schedule_wrap(function()
    if in_insert_mode() then M.request(false) end
  end))
end

--- Typing what the ghost text shows keeps the rest of it on screen.
local function type_through()
  local row, col = cursor()
  if vim.api.nvim_get_current_buf() ~= s.buf or row ~= s.row or col <= s.col then return false end
  local line = vim.api.nvim_buf_get_lines(s.buf, row, row + 1, false)[1] or ''
  local typed = line:sub(s.col + 1, col)
  if s.text:sub(1, #typed) ~= typed or #typed >= #s.text or line:sub(col + 1) ~= s.after then
    return false
  end
  s.text, s.col, s.items, s.index = s.text:sub(#typed + 1), col, { s.text:sub(#typed + 1) }, 1
  s.shown = s.text -- the same suggestion, not a new one
  draw()
  return true
end

local function on_text_changed()
  if s and s.own_tick == vim.api.nvim_buf_get_changedtick(s.buf) then return end
  if s and type_through() then return end
  clear('reject')
  schedule()
end

local function on_cursor_moved()
  if not s then return end
  local row, col = cursor()
  if vim.api.nvim_get_current_buf() ~= s.buf or row ~= s.row or col ~= s.col then
    cancel_pending()
    clear('reject')
  end
end

-- Where the cursor comes to rest (a jump, a click, another buffer), the server computes the
-- prompt before the first keystroke asks for it (its `warm` setting). Typing moves the cursor
-- too, but then the completion request computes the prompt: a rest where typing left the
-- cursor is not sent.
local rest_timer = nil
local typed_at = nil -- {buf, row, col} after the last edit

local function on_text_edited()
  local row, col = cursor()
  typed_at = { vim.api.nvim_get_current_buf(), row, col }
  if rest_timer then rest_timer:stop() end
end

local function on_cursor_rest_candidate()
  rest_timer = rest_timer or uv.new_timer()
  rest_timer:stop()
  rest_timer:start(config.options.rest_ms, 0, vim.schedule_wrap(function()
    local buf = vim.api.nvim_get_current_buf()
    local client = client_for(buf)
    if not client or not config.language_enabled(vim.bo[buf].filetype) then return end
    local row, col = cursor()
    if typed_at and typed_at[1] == buf and typed_at[2] == row and typed_at[3] == col then return end
    client:notify('offpilot/cursorRested', vim.lsp.util.make_position_params(0, client.offset_encoding))
  end))
end

-- Public API ----------------------------------------------------------------------------------

function M.visible()
  if builtin() then return false end
  return s ~= nil and vim.api.nvim_get_current_buf() == s.buf
end

--- Insert the whole suggestion ('all'), its next word ('word') or the rest of its line ('line').
function M.accept(kind)
  if builtin() then return M._builtin_accept(kind) end
  if not M.visible() then return false end
  kind = kind or 'all'
  local part = kind == 'word' and ghost.next_word(s.text) or kind == 'line' and ghost.next_line(s.text) or s.text
  cancel_pending()
  local lines = vim.split(part, '\n', { plain = true })
  vim.api.nvim_buf_set_text(s.buf, s.row, s.col, s.row, s.col, lines)
  local row = s.row + #lines - 1
  local col = (#lines == 1 and s.col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  notify(s.buf, 'offpilot/didAcceptCompletion', { acceptedLength = vim.fn.strchars(part) })
  local rest = s.text:sub(#part + 1)
  if rest == '' then
    ghost.clear(s.buf)
    s = nil
    return true
  end
  local line = vim.api.nvim_buf_get_lines(s.buf, row, row + 1, false)[1] or ''
  s.row, s.col, s.after, s.text, s.items, s.index = row, col, line:sub(col + 1), rest, { rest }, 1
  s.accepted, s.shown, s.own_tick = true, rest, vim.api.nvim_buf_get_changedtick(s.buf)
  draw()
  return true
end

function M.dismiss()
  cancel_pending()
  clear('reject')
end

--- Show the next (1) or previous (-1) suggestion.
function M.cycle(step)
  if builtin() then
    vim.lsp.inline_completion.select({ count = step })
    return
  end
  if not M.visible() or #s.items < 2 then return end
  s.index = (s.index - 1 + step) % #s.items + 1
  s.text = s.items[s.index]
  draw()
end

function M.trigger()
  if builtin() then
    -- 0.12 requests on its own as you type; re-enabling asks again at the cursor
    vim.lsp.inline_completion.enable(true, { bufnr = 0 })
    return
  end
  M.request(true)
end

-- Neovim 0.12+: the built-in UI; word and line accepts apply part of the item themselves.
function M._builtin_accept(kind)
  if kind == nil or kind == 'all' then return vim.lsp.inline_completion.get() end
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      local line = vim.api.nvim_get_current_line()
      local _, col = cursor()
      local client = client_for(0)
      local text = text_after_cursor({ insertText = item.insert_text, range = nil }, line, col, client and client.offset_encoding or 'utf-16')
      if not text then return end
      local part = kind == 'word' and ghost.next_word(text) or ghost.next_line(text)
      vim.schedule(function() vim.api.nvim_put(vim.split(part, '\n', { plain = true }), 'c', false, true) end)
    end,
  })
end

--- A short word for a statusline, e.g. `%{v:lua.require'offpilot'.statusline()}`.
function M.statusline()
  return 'offpilot:' .. M.state.status
end

function M.send_settings()
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    client:notify('workspace/didChangeConfiguration', { settings = { offpilot = config.options.server } })
  end
end

function M.toggle(enable)
  if enable == nil then enable = not config.options.server.enable end
  config.options.server.enable = enable
  if not enable then M.dismiss() end
  M.send_settings()
  vim.notify('offpilot ' .. (enable and 'enabled' or 'disabled'))
end

function M.stats()
  local client = client_for(0) or vim.lsp.get_clients({ name = NAME })[1]
  if not client then return vim.notify('offpilot: the server is not running', vim.log.levels.WARN) end
  client:request('workspace/executeCommand', { command = 'offpilot.stats', arguments = {} }, function(err, result)
    if err then return vim.notify('offpilot: ' .. err.message, vim.log.levels.ERROR) end
    local t = result.total or {}
    vim.notify(('offpilot (local statistics): %d shown, %d accepted (%.1f%%), %d characters accepted\n%s'):format(
      t.shown or 0, t.accepted or 0, (t.acceptance_rate or 0) * 100, t.accepted_chars or 0, vim.inspect(result)))
  end)
end

function M.restart()
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do client:stop() end
  vim.defer_fn(function()
    vim.lsp.enable(NAME, false)
    vim.lsp.enable(NAME)
  end, 500)
end

function M.log()
  vim.cmd.split(vim.fn.fnameescape(config.options.log_file))
end

local function on_status(_, params)
  M.state = { status = params.state or 'unknown', message = params.message or '' }
  if M.state.status == 'error' then vim.notify('offpilot: ' .. M.state.message, vim.log.levels.ERROR) end
  vim.api.nvim_exec_autocmds('User', { pattern = 'OffpilotStatus', modeline = false })
  vim.cmd.redrawstatus({ bang = true })
end

function M.setup(opts)
  local o = config.setup(opts)
  vim.api.nvim_set_hl(0, 'OffpilotGhost', { link = 'Comment', default = true })
  vim.lsp.config(NAME, {
    cmd = config.server_cmd(),
    filetypes = o.filetypes,
    root_markers = o.root_markers,
    init_options = o.server,
    handlers = { ['offpilot/status'] = on_status },
  })
  vim.lsp.enable(NAME)
  local group = vim.api.nvim_create_augroup('offpilot', { clear = true })
  if builtin() then
    vim.api.nvim_create_autocmd('LspAttach', {
      group = group,
      callback = function(args)
        local client = vim.lsp.get_client_by_id(args.data.client_id)
        if client and client.name == NAME then
          vim.lsp.inline_completion.enable(true, { bufnr = args.buf, client_id = client.id })
        end
      end,
    })
  else
    vim.api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, { group = group, callback = on_text_changed })
    vim.api.nvim_create_autocmd('CursorMovedI', { group = group, callback = on_cursor_moved })
    vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, { group = group, callback = M.dismiss })
  end
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI', 'BufEnter' }, {
    group = group,
    callback = on_cursor_rest_candidate,
  })
  vim.api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI', 'TextChangedP' }, {
    group = group,
    callback = on_text_edited,
  })
  if o.keymaps then require('offpilot.keymaps').defaults() end
end

return M
