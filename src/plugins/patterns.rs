//! Lua patterns run inside C functions (`string.find`, `match`, `gmatch`, `gsub`), where the
//! instruction budget cannot reach: `("a"):rep(32768):find(("a-"):rep(5) .. "b")` takes
//! minutes. Applied to a client-controlled path or header, such a pattern is a denial of
//! service. These wrappers refuse a match whose worst case is out of proportion before it
//! starts, from the pattern's shape and the subject's length.

use mlua::{Function, Lua, MultiValue, Table, Value};

/// Worst-case matching steps one call may risk (tens of milliseconds).
const MAX_STEPS: f64 = 5e7;

pub fn guard(lua: &Lua) -> mlua::Result<()> {
    let string: Table = lua.globals().get("string")?;
    for (name, scans) in [
        ("find", false),
        ("match", false),
        ("gmatch", true),
        ("gsub", true),
    ] {
        let original: Function = string.get(name)?;
        let guarded = lua.create_function(move |_, args: MultiValue| {
            let subject = args.front().map_or(0, length_of);
            let plain = name == "find" && args.get(3).is_some_and(truthy);
            if let (false, Some(Value::String(pattern))) = (plain, args.get(1)) {
                check(subject, &pattern.as_bytes(), scans)?;
            }
            original.call::<MultiValue>(args)
        })?;
        string.set(name, guarded)?;
    }
    Ok(())
}

fn length_of(v: &Value) -> usize {
    match v {
        Value::String(s) => s.as_bytes().len(),
        // Numbers are matched as their decimal text.
        _ => 24,
    }
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::Boolean(false))
}

/// Each repeating quantifier can multiply the work by the subject's length; an unanchored
/// pattern (or a global scan) tries every start position too.
fn check(subject: usize, pattern: &[u8], scans: bool) -> mlua::Result<()> {
    let (quantifiers, anchored) = shape(pattern);
    let exponent = quantifiers + usize::from(scans || !anchored);
    let steps = (subject.max(1) as f64).powi(i32::try_from(exponent).unwrap_or(i32::MAX));
    if steps > MAX_STEPS {
        return Err(mlua::Error::runtime(format!(
            "pattern `{}` is too costly on a {subject}-byte string: anchor it, use fewer \
             `*`/`+`/`-`, check the length first, or use a plain find",
            String::from_utf8_lossy(pattern)
        )));
    }
    Ok(())
}

/// `(repeating quantifiers, anchored at the start)`, skipping `%x` escapes and `[...]` sets.
fn shape(pattern: &[u8]) -> (usize, bool) {
    let anchored = pattern.first() == Some(&b'^');
    let mut quantifiers = 0;
    let mut i = usize::from(anchored);
    while i < pattern.len() {
        match pattern[i] {
            b'%' => i += 2,
            b'[' => {
                // A set ends at the first `]` after its first member (`[]...]` holds `]`).
                i += 1;
                if pattern.get(i) == Some(&b'^') {
                    i += 1;
                }
                i += 1;
                while i < pattern.len() && pattern[i] != b']' {
                    i += if pattern[i] == b'%' { 2 } else { 1 };
                }
                i += 1;
            }
            b'*' | b'+' | b'-' => {
                quantifiers += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    (quantifiers, anchored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(shape(b"^/api/(.-)/(.-)$"), (2, true));
        assert_eq!(shape(b"%.php$"), (0, false));
        assert_eq!(shape(b"[a-z%-]+"), (1, false));
        assert_eq!(shape(b"[]-]"), (0, false));
        assert_eq!(shape(b"%-%*%+"), (0, false));
    }

    #[test]
    fn catastrophic_patterns_are_refused_before_they_run() {
        let lua = Lua::new();
        guard(&lua).unwrap();
        let started = std::time::Instant::now();
        let e = lua
            .load(r#"return string.rep("a", 32768):find(string.rep("a-", 5) .. "b")"#)
            .exec()
            .expect_err("refused");
        assert!(e.to_string().contains("too costly"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Everyday patterns on everyday strings still work, as methods and as functions.
        let ok: (bool, String, i64, String) = lua
            .load(
                r#"local p = "/api/v1/items/42"
                   local a = p:find("%.php$") == nil
                   local id = p:match("^/api/v1/items/(%d+)$")
                   local n = select(2, p:gsub("/", "/"))
                   local trimmed = string.match("  x  ", "^%s*(.-)%s*$")
                   return a, id, n, trimmed"#,
            )
            .eval()
            .unwrap();
        assert_eq!(ok, (true, "42".to_string(), 4, "x".to_string()));
        let plain: bool = lua
            .load(r#"return string.rep("a", 100000):find("a-a-a-b", 1, true) == nil"#)
            .eval()
            .unwrap();
        assert!(plain);
    }
}
