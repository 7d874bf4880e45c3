//! The plugin API: a script built by `plugins::build` (the sandbox, the guarded Lua pattern
//! functions, the request and response objects) run through `Plugins::on_request` and
//! `Plugins::on_response` with hostile patterns, subjects, headers and answers.
//!
//! Input, one field a line: a Lua pattern, a subject, a `gsub` replacement, how often the
//! subject is repeated (decimal, at most 4096), a header name, a header value and the rest is
//! the request target. They reach the script as the identity's user and groups (which, unlike
//! header values, may hold any character) and as the request itself.
//!
//! Invariants: nothing panics or hangs (the guard refuses a match that could run long, the
//! instruction budget stops a script; libFuzzer's `-timeout` and the 3-second check below
//! catch a call that still runs away); a script error is an error, and the request header the
//! call hands back is a valid one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pingora::http::{RequestHeader, ResponseHeader};
use portcullis::plugins::{self, Context, PluginSpec, Plugins};
use portcullis::user::Identity;
use portcullis_fuzz::split;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Each pattern function on the fuzzer's pattern, each in `pcall` so that one refusal does
/// not hide the others; then the header methods, and an answer built from what was found.
const SCRIPT: &str = r#"
local function try(f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return tostring(a) .. "," .. tostring(b) else return "error" end
end

function on_request(req)
  local p = req.user or ""
  local groups = req.groups
  local s, repl = groups[1] or "", groups[2] or ""
  local n = tonumber(groups[3]) or 1
  if n > 1 then s = s:rep(math.min(n, 4096)) end
  local found = try(string.find, s, p)
  local plain = try(string.find, s, p, 1, true)
  local matched = try(string.match, s, p)
  local anchored = try(string.match, s, "^" .. p)
  local replaced = try(string.gsub, s, p, repl)
  local count = 0
  pcall(function()
    for _ in s:gmatch(p) do
      count = count + 1
      if count > 1000 then break end
    end
  end)
  local name, value = req.email or "x-name", groups[4] or ""
  pcall(req.set_header, req, name, value)
  pcall(req.set_header, req, "x-found", found .. plain .. matched .. anchored)
  pcall(req.remove_header, req, groups[5] or "x-gone")
  local seen = req:header(name)
  if req.path:find("^/answer") then
    return { status = tonumber(req.query or "") or 200, headers = { [name] = value }, body = replaced .. count }
  end
  if req.path:find("^/status") then
    return tonumber(req.query or "")
  end
  return nil
end

function on_response(resp)
  local name, value = resp.email or "x-name", resp.groups[4] or ""
  pcall(resp.set_header, resp, name, value)
  pcall(resp.remove_header, resp, resp.user or "")
  local _ = resp:request_header(name), resp.status, resp.host, resp.client_ip, resp.route
end
"#;

const ROUTE: &str = "fuzz";

fn plugins() -> &'static Plugins {
    static PLUGINS: OnceLock<Plugins> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        let spec = PluginSpec {
            name: "fuzz".into(),
            path: "fuzz.lua".into(),
            source: SCRIPT.into(),
            routes: None,
            config: serde_json::json!({ "limit": 3, "paths": ["/a", "/b"] }),
        };
        plugins::build(vec![spec], &[ROUTE])
            .unwrap_or_else(|e| panic!("the fixed script is refused: {e:?}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let fields = split::fields(data, 7);
    let [pattern, subject, replacement, repeat, name, value, target] = fields[..] else {
        return;
    };
    let text = |f: &[u8]| split::text(f).into_owned();
    let identity = Identity {
        sub: "fuzz".into(),
        user: text(pattern),
        groups: vec![
            text(subject),
            text(replacement),
            text(repeat),
            text(value),
            text(name),
        ],
        email: Some(text(name)),
        sid: None,
    };
    let context = || Context {
        client_ip: Some([127, 0, 0, 1].into()),
        route: ROUTE.into(),
        identity: Some(identity.clone()),
    };
    let target = if target.is_empty() { &b"/"[..] } else { target };
    let Ok(mut req) = RequestHeader::build("GET", target, None) else {
        return;
    };
    let plugins = plugins();

    let started = Instant::now();
    let answer = plugins.on_request(0, &mut req, context());
    check_time(started, "on_request");
    if let Ok(Some(answer)) = answer {
        assert!((200..=599).contains(&answer.status), "{answer:?}");
    }
    // The header handed back is still a request the proxy can forward.
    for (name, value) in req.headers.iter() {
        assert!(!name.as_str().is_empty());
        assert!(!value
            .as_bytes()
            .iter()
            .any(|&b| b == b'\r' || b == b'\n' || b == 0));
    }

    let mut resp = ResponseHeader::build(200, None).expect("response");
    let started = Instant::now();
    let _ = plugins.on_response(0, &mut req, &mut resp, context());
    check_time(started, "on_response");
});

/// The guard and the instruction budget keep a call to about a hundred milliseconds.
fn check_time(started: Instant, phase: &str) {
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "{phase} ran for {took:?}: a pattern or script escaped its budget"
    );
}
