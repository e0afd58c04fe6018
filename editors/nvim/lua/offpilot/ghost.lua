-- Ghost text: one suggestion drawn with an extmark (inline virt_text + virt_lines).
local M = {}

local ns = vim.api.nvim_create_namespace('offpilot.ghost')
M.ns = ns

--- Draw `text` (the part after the cursor) at (row, col), 0-based, in `buf`.
--- At the end of a line it overlays the empty cells, so the cursor stays before it; inside a
--- line it is inline, pushing the rest of the line right.
function M.draw(buf, row, col, text, hl)
  M.clear(buf)
  local lines = vim.split(text, '\n', { plain = true })
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  local opts = {
    virt_text = { { lines[1], hl } },
    virt_text_pos = col >= #line and 'overlay' or 'inline',
    hl_mode = 'combine',
    right_gravity = false,
  }
  if #lines > 1 then
    opts.virt_lines = vim.tbl_map(function(l) return { { l, hl } } end, vim.list_slice(lines, 2))
  end
  vim.api.nvim_buf_set_extmark(buf, ns, row, col, opts)
end

function M.clear(buf)
  if buf and vim.api.nvim_buf_is_valid(buf) then vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1) end
end

--- The next word of `text`: leading blanks, then a run of word characters or one other character.
function M.next_word(text)
  local word = text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+')
  return word or text
end

--- The rest of the current line of `text`, or the next line when it starts with a line break.
function M.next_line(text)
  if text:sub(1, 1) == '\n' then
    local nl = text:find('\n', 2, true)
    return nl and text:sub(1, nl - 1) or text
  end
  local nl = text:find('\n', 1, true)
  return nl and text:sub(1, nl - 1) or text
end

return M
