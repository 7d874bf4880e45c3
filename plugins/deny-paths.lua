-- Answers 404 for paths no upstream should serve to the internet: VCS metadata, environment
-- files, backups, at any depth (`/.git/config`, `/console/.git/HEAD`, `/app/.env.local`).
-- A 404 (not 403) tells a scanner nothing. `req.path` is the proxy's canonical path: escapes of
-- unreserved characters decoded, dot segments resolved, repeated slashes merged, anything
-- ambiguous already refused — so `/%2egit/config` or `/x/../.git/config` arrive as `/.git/config`.
--
--   plugins:
--     - script: ../plugins/deny-paths.lua
--       config:
--         names: [".git", ".env", ".svn"]   # a segment equal to one (or to one plus `.…`)
--         prefixes: ["/server-status"]       # whole-path prefixes
--         suffixes: [".bak", "~"]

local names = (config and config.names) or { ".git", ".svn", ".hg", ".env", ".ds_store", ".htpasswd", ".htaccess" }
local prefixes = (config and config.prefixes) or {}
local suffixes = (config and config.suffixes) or { ".bak", ".swp", "~" }

local function starts_with(s, prefix)
  return string.sub(s, 1, #prefix) == prefix
end

local function ends_with(s, suffix)
  return suffix == "" or string.sub(s, -#suffix) == suffix
end

local function denied_segment(segment)
  for _, name in ipairs(names) do
    local n = string.lower(name)
    if segment == n or starts_with(segment, n .. ".") then
      return true
    end
  end
  return false
end

local function not_found()
  return { status = 404, headers = { ["content-type"] = "text/plain" }, body = "Not found\n" }
end

function on_request(req)
  local path = string.lower(req.path)
  for segment in string.gmatch(path, "[^/]+") do
    if denied_segment(segment) then
      return not_found()
    end
  end
  for _, prefix in ipairs(prefixes) do
    if starts_with(path, string.lower(prefix)) then
      return not_found()
    end
  end
  for _, suffix in ipairs(suffixes) do
    if ends_with(path, string.lower(suffix)) then
      return not_found()
    end
  end
end
