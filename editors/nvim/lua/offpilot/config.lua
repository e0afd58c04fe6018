-- Options: defaults merged once in setup(); what the server understands is sent as its settings.
local M = {}

local here = debug.getinfo(1, 'S').source:sub(2)
local checkout = vim.fn.fnamemodify(here, ':p:h:h:h:h:h') -- editors/nvim/lua/offpilot -> repo

M.defaults = {
  -- the server command; nil: `offpilot` from the checkout's .venv, else from $PATH
  cmd = nil,
  log_level = 'INFO',
  log_file = vim.fn.stdpath('log') .. '/offpilot.log',
  filetypes = { 'python' },
  root_markers = { '.git', 'pyproject.toml' },
  -- sent to the server (initializationOptions, workspace/didChangeConfiguration)
  server = {
    enable = true,
    languages = { ['*'] = true },
    maxTokens = 48,
    multiLine = true,
    timeBudgetMs = 2000,
    debounceMs = 0, -- the plugin debounces keystrokes itself
    -- show an answer or not, from the model's confidence: 'off', 'quiet', 'balanced', 'eager';
    -- each filetype's threshold then moves with your own accepts and rejects
    gate = 'balanced',
  },
  debounce_ms = 75, -- wait this long after a keystroke before asking
  rest_ms = 300, -- the cursor still this long (not by typing): the server computes the prompt there
  builtin = 'auto', -- use vim.lsp.inline_completion where it exists (0.12+); false: the plugin's UI
  keymaps = true, -- <Tab> accept, <C-Right> word, <C-Down> line, <C-]> dismiss, <M-]>/<M-[> cycle
  hl_group = 'OffpilotGhost',
}

M.options = vim.deepcopy(M.defaults)

function M.setup(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  if not M.options.cmd then
    local venv = checkout .. '/.venv/bin/offpilot'
    local exe = vim.fn.executable(venv) == 1 and venv or 'offpilot'
    M.options.cmd = { exe, 'serve' }
  end
  return M.options
end

function M.server_cmd()
  local o = M.options
  local cmd = vim.list_extend(vim.deepcopy(o.cmd), { '--log-level', o.log_level })
  if o.log_file then vim.list_extend(cmd, { '--log-file', o.log_file }) end
  return cmd
end

function M.language_enabled(filetype)
  local s = M.options.server
  if not s.enable then return false end
  local v = s.languages[filetype]
  if v == nil then v = s.languages['*'] end
  return v ~= false
end

return M
