-- Maintenance window: every request on the routes this plugin is given gets 503 with
-- Retry-After, except for members of the listed groups, who keep working.
--
--   plugins:
--     - script: ../plugins/maintenance.lua
--       routes: [console, api]
--       config:
--         retry_after: "600"
--         message: "Back at 14:00 UTC."
--         allow_groups: [admins]

local retry_after = (config and config.retry_after) or "300"
local message = (config and config.message) or "Down for maintenance. Please try again later."
local allowed = {}
for _, group in ipairs((config and config.allow_groups) or {}) do
  allowed[group] = true
end

function on_request(req)
  for _, group in ipairs(req.groups) do
    if allowed[group] then
      return nil
    end
  end
  return {
    status = 503,
    headers = { ["content-type"] = "text/plain; charset=utf-8", ["retry-after"] = tostring(retry_after) },
    body = message .. "\n",
  }
end
