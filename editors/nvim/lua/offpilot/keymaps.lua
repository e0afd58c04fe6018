-- Default keys (setup{ keymaps = false } leaves them to you; the <Plug> mappings stay).
-- Each passes its key through when no suggestion is on screen.
local M = {}

local function with_fallback(lhs, fn_name, arg)
  vim.keymap.set('i', lhs, function()
    local offpilot = require('offpilot')
    if offpilot.builtin() then -- 0.12+: as in `:help vim.lsp.inline_completion.get()`
      return offpilot.accept(arg and arg:sub(2, -2) or nil) and '' or lhs
    end
    if offpilot.visible() then
      return ('<Cmd>lua require("offpilot").%s(%s)<CR>'):format(fn_name, arg or '')
    end
    return lhs
  end, { expr = true, replace_keycodes = true, desc = 'offpilot: ' .. fn_name .. ' ' .. (arg or '') })
end

function M.defaults()
  with_fallback('<Tab>', 'accept', "'all'")
  with_fallback('<M-Right>', 'accept', "'word'")
  with_fallback('<M-C-Right>', 'accept', "'line'")
  vim.keymap.set('i', '<C-]>', function()
    if require('offpilot').visible() then return '<Cmd>lua require("offpilot").dismiss()<CR>' end
    return '<C-]>'
  end, { expr = true, replace_keycodes = true, desc = 'offpilot: dismiss' })
  vim.keymap.set('i', '<M-]>', '<Plug>(offpilot-next)', { desc = 'offpilot: next suggestion' })
  vim.keymap.set('i', '<M-[>', '<Plug>(offpilot-prev)', { desc = 'offpilot: previous suggestion' })
  vim.keymap.set('i', '<M-\\>', '<Plug>(offpilot-trigger)', { desc = 'offpilot: suggest now' })
end

return M
