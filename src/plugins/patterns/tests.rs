use super::*;
use std::time::{Duration, Instant};

fn guarded() -> Lua {
    let lua = Lua::new();
    guard(&lua).unwrap();
    lua
}

/// Runs `code` with a fresh budget: `Ok(true)` when it ran, `Ok(false)` when the guard
/// refused it, and how long it took either way.
fn attempt(lua: &Lua, code: &str) -> (bool, Duration) {
    reset_spending(lua);
    let started = Instant::now();
    let outcome = lua.load(code).exec();
    let took = started.elapsed();
    match outcome {
        Ok(()) => (true, took),
        Err(e) if e.to_string().contains("too costly") => (false, took),
        Err(e) => panic!("{code}: {e}"),
    }
}

/// Items as text: each class with its quantifier, the other items by name.
fn read(pattern: &[u8]) -> Vec<String> {
    items(pattern)
        .into_iter()
        .map(|item| match item {
            Item::Class { start, end, repeat } => {
                let q = match repeat {
                    Repeat::Once => "",
                    Repeat::Optional => "?",
                    Repeat::Greedy => "*",
                    Repeat::Lazy => "-",
                };
                format!("{}{q}", String::from_utf8_lossy(&pattern[start..end]))
            }
            Item::Balance => "balance".into(),
            Item::Frontier { width } => format!("frontier{width}"),
            Item::BackReference => "backref".into(),
            Item::Marker => "marker".into(),
        })
        .collect()
}

#[test]
fn items_are_read_as_lua_reads_them() {
    let cases: [(&str, &[&str]); 11] = [
        ("/(.-)/", &["/", "marker", ".-", "marker", "/"]),
        ("a?b*c+d-", &["a?", "b*", "c*", "d-"]),
        ("%d+%.", &["%d*", "%."]),
        ("[a-z%-]+", &["[a-z%-]*"]),
        ("[]-]?", &["[]-]?"]),
        ("[^]]", &["[^]]"]),
        // After `(`, `)` and `%b`, a `*` is a literal that may itself repeat.
        ("(**", &["marker", "**"]),
        ("()%b()?", &["marker", "balance", "?"]),
        ("%f[%w]%1$", &["frontier4", "backref", "marker"]),
        // `$` anywhere but last, and `^` anywhere but first, are literals.
        ("a$b^", &["a", "$", "b", "^"]),
        // A malformed tail ends the items: Lua stops there with an error.
        ("a*[b", &["a*"]),
    ];
    for (pattern, expected) in cases {
        assert_eq!(read(pattern.as_bytes()), expected, "{pattern}");
    }
    for malformed in ["%", "%b(", "%f", "%fx", "[", "[^", "[%", "[a%]"] {
        assert!(items(malformed.as_bytes()).is_empty(), "{malformed}");
    }
}

#[test]
fn classes_match_what_lua_matches() {
    let lua = Lua::new();
    let find: Function = lua.load("return string.find").eval().unwrap();
    for class in [
        ".", "a", "%a", "%A", "%c", "%d", "%D", "%g", "%l", "%p", "%s", "%S", "%u", "%w", "%x",
        "%z", "%.", "%%", "[a-z]", "[^a-z]", "[%a_-]", "[]]", "[^]]", "[a-]", "[%d-z]", "[z-a]",
        "[%]-]",
    ] {
        let member = members(class.as_bytes());
        for c in 0..=u8::MAX {
            let subject = lua.create_string([c]).unwrap();
            let pattern = format!("^{class}$");
            let lua_says: Option<i64> = find.call((subject, pattern)).unwrap();
            if lua_says.is_some() {
                assert!(member[usize::from(c)], "{class} matches {c}");
            } else if c.is_ascii() {
                assert!(!member[usize::from(c)], "{class} does not match {c}");
            }
        }
    }
}

fn steps(pattern: &str, subject: &str, honours_anchor: bool) -> f64 {
    let c = worst_case_steps(
        pattern.as_bytes(),
        Some(subject.as_bytes()),
        subject.len(),
        honours_anchor,
    );
    c.matching
}

#[test]
fn every_backtracking_construct_is_costed() {
    let a = "a".repeat(1000);
    let base = steps("^ab", &a, true);
    for pattern in [
        "^a?a?a?a?a?a?a?a?a?a?ab",
        "^a*ab",
        "^a+ab",
        "^a-ab",
        "^.-%b()",
        "^(a*)%1b",
        // Unanchored: every start position.
        "ab",
    ] {
        assert!(steps(pattern, &a, true) > 300.0 * base, "{pattern}");
    }
    // `gmatch` does not honour `^`.
    assert!(steps("^ab", &a, false) > 300.0 * base);
    // Each `?` doubles the work; each `*` `+` `-` multiplies it by the subject's length.
    let optional = |k: usize| steps(&"^a?".repeat(k), "aaaaaaaaaa", true);
    assert!(optional(21) > 1.9 * optional(20));
    let lazy = |k: usize| steps(&"^a-".repeat(k), &a, true);
    assert!(lazy(3) > 900.0 * lazy(2));
}

#[test]
fn a_repetition_is_bounded_by_the_runs_its_class_can_match() {
    // `[^/]*` stops at the next `/`: on a path of short segments it cannot multiply much.
    let path = "/seg".repeat(2000);
    assert!(steps("^/([^/]*)/([^/]*)/([^/]*)", &path, true) < 1e6);
    // On a subject that is one long run, the same pattern is cubic and refused.
    let run = "/".to_string() + &"s".repeat(8000);
    assert!(steps("^/([^/]*)/([^/]*)/([^/]*)", &run, true) > BUDGET_STEPS);
    // `.` matches every byte: no run is shorter than the subject.
    assert!(steps("^/(.-)/(.-)/(.-)$", &path, true) > BUDGET_STEPS);
}

#[test]
fn optional_items_cannot_stall_a_match() {
    let lua = guarded();
    // 25 optional `a` then 25 `a` against 25 `a`: 2^25 ways to fail, seconds in C.
    for code in [
        r#"string.match(("a"):rep(25), ("a?"):rep(25) .. ("a"):rep(25))"#,
        r#"string.match(("a"):rep(25), "^" .. ("a?"):rep(25) .. ("a"):rep(25) .. "$")"#,
        r#"string.find(("a"):rep(25), ("a?"):rep(25) .. ("a"):rep(25))"#,
        r#"string.gsub(("a"):rep(25), ("a?"):rep(25) .. ("a"):rep(25), "")"#,
        r#"for _ in string.gmatch(("a"):rep(25), ("a?"):rep(25) .. ("a"):rep(25)) do end"#,
        r#"string.match(("a"):rep(30), ("a?"):rep(30) .. ("a"):rep(30) .. "b")"#,
        r#"string.match(("a"):rep(60), ("(a?)"):rep(30) .. ("a"):rep(30))"#,
    ] {
        let (ran, took) = attempt(&lua, code);
        assert!(!ran, "{code} ran");
        assert!(took < Duration::from_millis(100), "{code} took {took:?}");
    }
}

/// Hostile pattern shapes from every backtracking construct, against subjects built to make
/// them fail late: whatever the guard lets through finishes in a fraction of a second.
#[test]
fn no_accepted_pattern_runs_long_on_any_subject() {
    let lua = guarded();
    let shapes = [
        "('a?'):rep(K) .. ('a'):rep(K)",
        "('a?'):rep(K) .. 'b'",
        "('a*'):rep(K) .. 'b'",
        "('a+'):rep(K) .. 'b'",
        "('a-'):rep(K) .. 'b'",
        "('.-'):rep(K) .. 'b'",
        "('[%a%d]*'):rep(K) .. '$'",
        "('(a*)'):rep(K) .. '%1b'",
        "('.-%b()'):rep(K)",
        "('.-%f[%w]'):rep(K) .. 'b'",
        "'[' .. ('%d'):rep(K * 40) .. ']'",
    ];
    let subjects = [
        "('a'):rep(L)",
        "('('):rep(L)",
        "('a'):rep(L) .. '!'",
        "('%a'):rep(L)",
    ];
    let mut refused = 0;
    for shape in shapes {
        for k in [1, 2, 3, 5, 8, 13, 21] {
            for subject in subjects {
                for len in [16, 256, 4096, 65536] {
                    let pattern = shape.replace('K', &k.to_string());
                    let subject = subject.replace('L', &len.to_string());
                    for call in [
                        format!("string.find({subject}, {pattern})"),
                        format!("string.match({subject}, '^' .. {pattern})"),
                        format!("string.gsub({subject}, {pattern}, 'x')"),
                        format!("for _ in string.gmatch({subject}, {pattern}) do end"),
                    ] {
                        let (ran, took) = attempt(&lua, &call);
                        refused += usize::from(!ran);
                        assert!(took < Duration::from_millis(750), "{call} took {took:?}");
                    }
                }
            }
        }
    }
    assert!(refused > 0);
}

#[test]
fn calls_of_one_plugin_call_share_the_budget() {
    let lua = guarded();
    // Each call is affordable; a hundred of them on the same subject are not.
    let one = r#"string.find(("a"):rep(1000), "^.-.-b")"#;
    assert!(attempt(&lua, one).0);
    let many = format!("for i = 1, 100 do {one} end");
    let (ran, took) = attempt(&lua, &many);
    assert!(!ran);
    assert!(took < Duration::from_millis(750), "{took:?}");
    // A new plugin call starts a new budget.
    assert!(attempt(&lua, one).0);
}

#[test]
fn everyday_patterns_still_work() {
    let lua = guarded();
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
    // Typical request-sized subjects: a 1 KiB path, an 8 KiB cookie header.
    let fine = [
        r#"assert(("/api/" .. ("x/"):rep(512)):match("^/api/(.-)/(.-)$"))"#,
        r#"local c = ("k=v; "):rep(1600) for k, v in c:gmatch("(%w+)=(%w+)") do end"#,
        r#"assert(("a"):rep(8192):find("%.php$") == nil)"#,
        r#"assert(("a"):rep(100000):find("a-a-a-b", 1, true) == nil)"#,
        r#"assert(string.find(12345, 34) == 3)"#,
    ];
    for code in fine {
        assert!(attempt(&lua, code).0, "{code} refused");
    }
}
