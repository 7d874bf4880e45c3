//! One Lua state per script and thread: only the harmless standard libraries, no file or
//! process access, a memory ceiling and an instruction budget per call, so that a broken
//! script fails its request instead of the proxy.

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Value, VmState};
use std::cell::Cell;

/// Memory one script's state may hold.
const MEMORY_LIMIT: usize = 16 * 1024 * 1024;
/// Instructions between two budget checks, and checks one call may pass: about ten million
/// instructions, tens of milliseconds, far beyond header work and short of a stuck worker.
const CHECK_EVERY: u32 = 10_000;
const CHECKS_PER_CALL: u32 = 1_000;

/// Counts budget checks of the call in progress (app data of the state).
struct Budget(Cell<u32>);

/// Globals of the base library that reach the file system or load code from strings.
const REMOVED_GLOBALS: [&str; 4] = ["dofile", "loadfile", "load", "require"];

/// Creates a sandboxed state and runs the script's top level in it. `chunk_name` is what
/// error messages call the script (its path).
pub fn instantiate(
    source: &str,
    chunk_name: &str,
    plugin: &str,
    config: &serde_json::Value,
) -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8,
        LuaOptions::default(),
    )?;
    lua.set_memory_limit(MEMORY_LIMIT)?;
    lua.set_app_data(Budget(Cell::new(0)));
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(CHECK_EVERY),
        |lua, _| {
            let spent = lua.app_data_ref::<Budget>().map_or(0, |b| {
                let n = b.0.get() + 1;
                b.0.set(n);
                n
            });
            if spent > CHECKS_PER_CALL {
                return Err(mlua::Error::runtime(
                    "plugin exceeded its instruction budget",
                ));
            }
            Ok(VmState::Continue)
        },
    )?;
    super::patterns::guard(&lua)?;
    let globals = lua.globals();
    for name in REMOVED_GLOBALS {
        globals.set(name, Value::Nil)?;
    }
    let target = plugin.to_string();
    globals.set(
        "log",
        lua.create_function(move |_, message: String| {
            tracing::info!(plugin = %target, "{message}");
            Ok(())
        })?,
    )?;
    globals.set("print", globals.get::<Value>("log")?)?;
    globals.set("config", config_value(&lua, config)?)?;
    reset_budget(&lua);
    lua.load(source).set_name(format!("@{chunk_name}")).exec()?;
    Ok(lua)
}

/// Starts a fresh budget for the next call.
pub fn reset_budget(lua: &Lua) {
    if let Some(b) = lua.app_data_ref::<Budget>() {
        b.0.set(0);
    }
    super::patterns::reset_spending(lua);
}

/// The plugin's `config:` as a Lua value: tables, strings, numbers and booleans.
fn config_value(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.set(i + 1, config_value(lua, item)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table()?;
            for (k, v) in map {
                t.set(k.as_str(), config_value(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &str) -> mlua::Result<Lua> {
        instantiate(
            source,
            "test.lua",
            "test",
            &serde_json::json!({"n": 3, "xs": ["a"]}),
        )
    }

    #[test]
    fn no_files_no_processes_no_loading() {
        for script in [
            "io.open('/etc/passwd')",
            "os.execute('true')",
            "dofile('/etc/passwd')",
            "loadfile('/etc/passwd')",
            "load('return 1')()",
            "require('os')",
            "debug.getinfo(1)",
            "package.loadlib('libc.so.6', 'system')",
        ] {
            assert!(run(script).is_err(), "{script} ran");
        }
        assert!(run(
            "x = string.upper('a') .. math.floor(1.5) .. table.concat({config.n, config.xs[1]})"
        )
        .is_ok());
    }

    #[test]
    fn runaway_scripts_are_stopped() {
        let e = run("while true do end").expect_err("stopped");
        assert!(e.to_string().contains("instruction budget"), "{e}");
        let e =
            run("local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000) end").expect_err("stopped");
        assert!(
            e.to_string().contains("memory") || e.to_string().contains("budget"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_script_and_line() {
        let e = run("\n\nlocal x = = 1").expect_err("syntax error");
        assert!(e.to_string().contains("test.lua:3"), "{e}");
    }
}
