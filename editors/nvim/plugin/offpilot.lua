-- <Plug> mappings and the :Offpilot command. Nothing starts until require('offpilot').setup().
if vim.g.loaded_offpilot then return end
vim.g.loaded_offpilot = true

local function plug(name, rhs, desc)
  vim.keymap.set('i', '<Plug>(offpilot-' .. name .. ')', rhs, { desc = 'offpilot: ' .. desc })
end
plug('accept', function() require('offpilot').accept('all') end, 'accept the suggestion')
plug('accept-word', function() require('offpilot').accept('word') end, 'accept the next word')
plug('accept-line', function() require('offpilot').accept('line') end, 'accept the next line')
plug('dismiss', function() require('offpilot').dismiss() end, 'dismiss the suggestion')
plug('next', function() require('offpilot').cycle(1) end, 'next suggestion')
plug('prev', function() require('offpilot').cycle(-1) end, 'previous suggestion')
plug('trigger', function() require('offpilot').trigger() end, 'suggest now')

local subcommands = {
  toggle = function() require('offpilot').toggle() end,
  enable = function() require('offpilot').toggle(true) end,
  disable = function() require('offpilot').toggle(false) end,
  status = function()
    local st = require('offpilot').state
    vim.notify(('offpilot: %s %s'):format(st.status, st.message))
  end,
  stats = function() require('offpilot').stats() end,
  restart = function() require('offpilot').restart() end,
  log = function() require('offpilot').log() end,
}

vim.api.nvim_create_user_command('Offpilot', function(args)
  local fn = subcommands[args.args ~= '' and args.args or 'status']
  if not fn then return vim.notify('offpilot: unknown subcommand ' .. args.args, vim.log.levels.ERROR) end
  fn()
end, {
  nargs = '?',
  complete = function() return vim.tbl_keys(subcommands) end,
  desc = 'offpilot: toggle | enable | disable | status | stats | restart | log',
})
