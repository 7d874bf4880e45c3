-- Answers 404 for paths no upstream should serve to the internet: VCS metadata, environment
-- files, backups. A 404 (not 403) tells a scanner nothing.
--
--   plugins:
--     - script: ../plugins/deny-paths.lua
--       config:
--         prefixes: ["/.git", "/.env", "/server-status"]   # replaces the list below
--         suffixes: [".bak", "~"]

local prefixes = (config and config.prefixes) or { "/.git", "/.svn", "/.hg", "/.env", "/.DS_Store" }
local suffixes = (config and config.suffixes) or { ".bak", ".swp", "~" }

local function starts_with(s, prefix)
  return string.sub(s, 1, #prefix) == prefix
end

local function ends_with(s, suffix)
  return suffix == "" or string.sub(s, -#suffix) == suffix
end

function on_request(req)
  local path = string.lower(req.path)
  for _, prefix in ipairs(prefixes) do
    if starts_with(path, string.lower(prefix)) then
      return { status = 404, headers = { ["content-type"] = "text/plain" }, body = "Not found\n" }
    end
  end
  for _, suffix in ipairs(suffixes) do
    if ends_with(path, string.lower(suffix)) then
      return { status = 404, headers = { ["content-type"] = "text/plain" }, body = "Not found\n" }
    end
  end
end
