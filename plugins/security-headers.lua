-- Browser hardening headers on every upstream answer, unless the upstream chose its own.
--
--   plugins:
--     - script: ../plugins/security-headers.lua
--       config:
--         content-security-policy: "default-src 'self'; frame-ancestors 'self'"
--
-- `config` entries replace the defaults below or add headers; an empty string drops one.

local defaults = {
  -- Framing by the site's own pages only: a console may embed its desktops, nobody else may.
  ["x-frame-options"] = "SAMEORIGIN",
  ["content-security-policy"] = "frame-ancestors 'self'",
  ["permissions-policy"] = "camera=(), microphone=(), geolocation=(), payment=()",
  ["cross-origin-opener-policy"] = "same-origin",
}

local headers = {}
for name, value in pairs(defaults) do
  headers[name] = value
end
for name, value in pairs(config or {}) do
  headers[string.lower(name)] = value
end

function on_response(resp)
  for name, value in pairs(headers) do
    if value ~= "" and resp:header(name) == nil then
      resp:set_header(name, value)
    end
  end
end
