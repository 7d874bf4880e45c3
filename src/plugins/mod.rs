//! Plugins: Lua scripts from `plugins/` that run at the request phase (after the access
//! decision, before the upstream; may answer, redirect or change headers) and the response
//! phase (may change the upstream's response headers). They are compiled into each config
//! snapshot, so they reload with it.
//!
//! A script defines `on_request(req)` and/or `on_response(resp)`. Lua states are per script
//! and per worker thread, made on first use after a reload: a call never waits on a lock and
//! never crosses an `.await`.

mod api;
mod patterns;
mod sandbox;

pub use api::Context;
use api::{placeholder_request, placeholder_response, RequestCall, ResponseCall};
use mlua::{Function, Lua, Value};
use pingora::http::{RequestHeader, ResponseHeader};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// A script as the config gives it: read, not yet run.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// The script's file stem: logs and metrics.
    pub name: String,
    /// The script's path, as error messages name it.
    pub path: String,
    pub source: String,
    /// Route names it runs on; `None`: every route.
    pub routes: Option<Vec<String>>,
    /// The `config:` table the script reads as the global `config`.
    pub config: serde_json::Value,
}

/// What a script learned when its top level ran: which phases it takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub on_request: bool,
    pub on_response: bool,
}

/// A script that does not load, naming its entry in the plugin list.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin {path}: {message}")]
pub struct BuildError {
    /// Index into the plugin list.
    pub plugin: usize,
    pub path: String,
    pub message: String,
}

impl BuildError {
    /// The field at fault, relative to the plugin list.
    pub fn field(&self) -> String {
        format!("[{}].script", self.plugin)
    }
}

/// Runs each script's top level once in its sandbox, so that a syntax error or a script that
/// fails at load is refused with its file and line before the snapshot serves. Every script
/// that fails is named.
pub fn build(specs: Vec<PluginSpec>, route_names: &[&str]) -> Result<Plugins, Vec<BuildError>> {
    let mut phases = Vec::with_capacity(specs.len());
    let mut errors = Vec::new();
    for (plugin, spec) in specs.iter().enumerate() {
        match check(&spec.source, &spec.path, &spec.config) {
            Ok(checked) => phases.push(checked),
            Err(message) => errors.push(BuildError {
                plugin,
                path: spec.path.clone(),
                message,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let by_route = Plugins::assign(&specs, route_names);
    Ok(Plugins {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        specs,
        phases,
        by_route,
    })
}

/// Runs a script once in a sandbox: which phases it defines, or why it does not load.
fn check(source: &str, path: &str, config: &serde_json::Value) -> Result<Checked, String> {
    let lua = sandbox::instantiate(source, path, "check", config).map_err(|e| lua_message(&e))?;
    let defined = |name: &str| matches!(lua.globals().get::<Value>(name), Ok(Value::Function(_)));
    let checked = Checked {
        on_request: defined("on_request"),
        on_response: defined("on_response"),
    };
    if !checked.on_request && !checked.on_response {
        return Err("defines neither `on_request` nor `on_response`".into());
    }
    Ok(checked)
}

pub use crate::plugin_answer::Answer;

#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {message}")]
pub struct PluginError {
    pub plugin: String,
    pub message: String,
}

/// The scripts of one config snapshot.
pub struct Plugins {
    /// Tells thread-local states of an older snapshot from this one's.
    id: u64,
    specs: Vec<PluginSpec>,
    /// Indexed like `specs`: the phases each script defines.
    phases: Vec<Checked>,
    /// Indexed like the router's routes: the scripts each runs, in config order.
    by_route: Vec<Vec<usize>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy)]
enum Phase {
    Request,
    Response,
}

impl Phase {
    /// The metric label.
    fn label(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Response => "response",
        }
    }
}

/// One script's state on one thread, with its phase functions looked up once.
struct State {
    lua: Lua,
    on_request: Option<Function>,
    on_response: Option<Function>,
}

thread_local! {
    /// This thread's Lua states: `(snapshot id, one slot per script)`.
    static STATES: RefCell<(u64, Vec<Option<State>>)> = const { RefCell::new((0, Vec::new())) };
}

impl Plugins {
    /// Whether these scripts, on these routes, are what `self` already runs.
    pub fn same_as(&self, specs: &[PluginSpec], route_names: &[&str]) -> bool {
        self.specs == specs && self.by_route == Self::assign(specs, route_names)
    }

    fn assign(specs: &[PluginSpec], route_names: &[&str]) -> Vec<Vec<usize>> {
        route_names
            .iter()
            .map(|route| {
                specs
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| {
                        s.routes
                            .as_ref()
                            .is_none_or(|names| names.iter().any(|n| n == route))
                    })
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect()
    }

    fn for_route(
        &self,
        route: usize,
        phase: fn(&Checked) -> bool,
    ) -> impl Iterator<Item = usize> + '_ {
        self.by_route
            .get(route)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&i| self.phases.get(i).is_some_and(phase))
    }

    pub fn has_request_phase(&self, route: usize) -> bool {
        self.for_route(route, |s| s.on_request).next().is_some()
    }

    pub fn has_response_phase(&self, route: usize) -> bool {
        self.for_route(route, |s| s.on_response).next().is_some()
    }

    /// Runs the route's `on_request` scripts in order until one answers.
    pub fn on_request(
        &self,
        route: usize,
        header: &mut RequestHeader,
        context: Context,
    ) -> Result<Option<Answer>, PluginError> {
        // The call owns the header while scripts run (so Lua can cache the object's type) and
        // hands it back whatever happens.
        let mut call = RequestCall {
            header: std::mem::replace(header, placeholder_request()),
            context,
        };
        let result = self.run_request(route, &mut call);
        *header = call.header;
        result
    }

    fn run_request(
        &self,
        route: usize,
        call: &mut RequestCall,
    ) -> Result<Option<Answer>, PluginError> {
        for i in self.for_route(route, |s| s.on_request) {
            let answer = self.call(i, Phase::Request, |lua, f| {
                let returned =
                    lua.scope(|scope| f.call::<Value>(scope.create_userdata_ref_mut(&mut *call)?))?;
                answer_of(returned)
            })?;
            if answer.is_some() {
                return Ok(answer);
            }
        }
        Ok(None)
    }

    /// Runs the route's `on_response` scripts in order.
    pub fn on_response(
        &self,
        route: usize,
        request: &mut RequestHeader,
        header: &mut ResponseHeader,
        context: Context,
    ) -> Result<(), PluginError> {
        let mut call = ResponseCall {
            request: std::mem::replace(request, placeholder_request()),
            header: std::mem::replace(header, placeholder_response()),
            context,
        };
        let result = self.for_route(route, |s| s.on_response).try_for_each(|i| {
            self.call(i, Phase::Response, |lua, f| {
                lua.scope(|scope| f.call::<()>(scope.create_userdata_ref_mut(&mut call)?))
            })
        });
        *request = call.request;
        *header = call.header;
        result
    }

    /// Calls the phase function of script `i` in this thread's state for it.
    fn call<R>(
        &self,
        i: usize,
        phase: Phase,
        run: impl FnOnce(&Lua, Function) -> mlua::Result<R>,
    ) -> Result<R, PluginError> {
        let spec = &self.specs[i];
        let fail = |message: String| {
            crate::metrics::metrics()
                .plugin_errors
                .with_label_values(&[spec.name.as_str(), phase.label()])
                .inc();
            PluginError {
                plugin: spec.name.clone(),
                message,
            }
        };
        STATES.with(|states| {
            let mut states = states.borrow_mut();
            if states.0 != self.id {
                *states = (self.id, (0..self.specs.len()).map(|_| None).collect());
            }
            let slot = &mut states.1[i];
            if slot.is_none() {
                let lua = sandbox::instantiate(&spec.source, &spec.path, &spec.name, &spec.config)
                    .map_err(|e| fail(lua_message(&e)))?;
                let globals = lua.globals();
                let on_request = globals.get::<Option<Function>>("on_request");
                let on_response = globals.get::<Option<Function>>("on_response");
                drop(globals);
                *slot = Some(State {
                    on_request: on_request.map_err(|e| fail(lua_message(&e)))?,
                    on_response: on_response.map_err(|e| fail(lua_message(&e)))?,
                    lua,
                });
            }
            let Some(state) = slot.as_ref() else {
                return Err(fail("no Lua state".into()));
            };
            let f = match phase {
                Phase::Request => state.on_request.clone(),
                Phase::Response => state.on_response.clone(),
            };
            let Some(f) = f else {
                return Err(fail(format!("on_{} is not a function", phase.label())));
            };
            let lua = &state.lua;
            sandbox::reset_budget(lua);
            run(lua, f).map_err(|e| fail(lua_message(&e)))
        })
    }
}

/// `nil` (carry on), a status number, or `{ status = …, headers = { … }, body = "…" }`.
fn answer_of(value: Value) -> mlua::Result<Option<Answer>> {
    let status = |n: i64| {
        u16::try_from(n)
            .ok()
            .filter(|s| (200..=599).contains(s))
            .ok_or_else(|| mlua::Error::runtime(format!("status {n} is not 200-599")))
    };
    match value {
        Value::Nil => Ok(None),
        Value::Integer(n) => Ok(Some(Answer {
            status: status(n)?,
            headers: Vec::new(),
            body: Vec::new(),
        })),
        Value::Table(t) => {
            let code: i64 = t.get("status")?;
            let mut headers = Vec::new();
            if let Some(h) = t.get::<Option<mlua::Table>>("headers")? {
                for pair in h.pairs::<String, mlua::LuaString>() {
                    let (name, value) = pair?;
                    let name = http::HeaderName::try_from(name.as_str()).map_err(|_| {
                        mlua::Error::runtime(format!("`{name}` is not a header name"))
                    })?;
                    let value = http::HeaderValue::from_bytes(&value.as_bytes()).map_err(|_| {
                        mlua::Error::runtime(format!(
                            "the value of `{name}` is not a valid header value"
                        ))
                    })?;
                    headers.push((name, value));
                }
            }
            let body = t
                .get::<Option<mlua::LuaString>>("body")?
                .map_or_else(Vec::new, |b| b.as_bytes().to_vec());
            Ok(Some(Answer {
                status: status(code)?,
                headers,
                body,
            }))
        }
        other => Err(mlua::Error::runtime(format!(
            "on_request returned a {}; return nil, a status or {{ status, headers, body }}",
            other.type_name()
        ))),
    }
}

/// Lua's message without mlua's traceback decoration: `path:line: what`.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => {
            m.lines().next().unwrap_or_default().to_string()
        }
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, source: &str) -> PluginSpec {
        PluginSpec {
            name: name.into(),
            path: format!("{name}.lua"),
            source: source.into(),
            routes: None,
            config: serde_json::Value::Null,
        }
    }

    #[test]
    fn every_script_that_does_not_load_is_a_build_error_naming_its_entry() {
        let specs = vec![
            spec("good", "function on_request(req) end"),
            spec("broken", "function on_request(req)\n  return (\nend\n"),
            spec("idle", "x = 1\n"),
        ];
        let errors = build(specs, &["/"]).err().unwrap_or_default();
        let fields: Vec<String> = errors.iter().map(BuildError::field).collect();
        assert_eq!(fields, ["[1].script", "[2].script"]);
        assert!(
            errors[0].to_string().starts_with("plugin broken.lua: "),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].message.contains("defines neither"),
            "{}",
            errors[1]
        );

        let plugins = build(vec![spec("good", "function on_response(r) end")], &["/"]);
        let plugins = plugins.ok().unwrap();
        assert!(plugins.has_response_phase(0) && !plugins.has_request_phase(0));
    }
}
