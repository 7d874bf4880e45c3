//! Lua patterns run inside C functions (`string.find`, `match`, `gmatch`, `gsub`), where the
//! instruction budget cannot reach: `("a"):rep(32768):find(("a-"):rep(5) .. "b")` takes
//! minutes, and so does `("a?"):rep(25) .. ("a"):rep(25)` on a 25-byte string. Applied to a
//! client-controlled path or header, such a pattern is a denial of service. These wrappers
//! bound the worst case of a call before it starts, from the pattern's items and the
//! subject, and charge it to a budget that all pattern calls of one plugin call share: a
//! match that could run too long is refused, not started.
//!
//! The bound follows Lua 5.4's matcher (`lstrlib.c`) item by item, from the end of the
//! pattern back to its start; `rest` bounds what follows an item, `n` is the number of
//! positions in the subject and `s` the positions where a repetition of the item's class can
//! stop (`n`, or one more than the longest run of subject bytes the class matches):
//!
//! | item                        | matcher                                    | bound              |
//! |-----------------------------|--------------------------------------------|--------------------|
//! | class (`a` `.` `%d` `[…]`)  | one test                                   | `w + rest`         |
//! | class `?`                   | with the character, then without           | `w + min(2,s)·rest`|
//! | class `*` / `+`             | expands, then backs off one at a time      | `s·(w + rest)`     |
//! | class `-`                   | tries the rest, then grows one at a time   | `s·(w + rest)`     |
//! | `%bxy`                      | scans to the balancing closer              | `n + rest`         |
//! | `%1`…`%9`                   | compares a capture (up to `n` bytes)       | `n + rest`         |
//! | `%f[…]`                     | tests two characters                       | `2·w + rest`       |
//! | `(` `)` `()` final `$`      | bookkeeping                                | `1 + rest`         |
//!
//! `w` is the cost of testing one character against the class (a set is scanned member by
//! member). A call multiplies the bound by the start positions it tries: one when the
//! pattern is anchored with `^` (which `gmatch` does not honour), `n` otherwise. Nested
//! repetitions multiply (`n^k` for `k` of them), each `?` doubles.

use mlua::{Function, Lua, MultiValue, Table, Value};
use std::cell::Cell;

mod items;
use items::{items, members, Item, Repeat};

/// Matching steps all pattern calls of one plugin call may risk together. A step is measured
/// at 1 to 10 nanoseconds on an unoptimised build: about a hundred milliseconds at worst.
const BUDGET_STEPS: f64 = 1e7;

/// Work the guard may spend reading a subject to sharpen a bound (charged to the budget).
const MAX_REFINING_STEPS: f64 = 4e6;

/// Steps charged since the plugin call began (app data of the state).
struct Spent(Cell<f64>);

/// Replaces the pattern functions of `string` (which is also the strings' metatable index,
/// so `s:find(p)` is covered) with guarded ones.
pub fn guard(lua: &Lua) -> mlua::Result<()> {
    lua.set_app_data(Spent(Cell::new(0.0)));
    let string: Table = lua.globals().get("string")?;
    for (name, honours_anchor) in [
        ("find", true),
        ("match", true),
        ("gsub", true),
        // Lua 5.4 `gmatch` matches a leading `^` literally: it anchors nothing.
        ("gmatch", false),
    ] {
        let original: Function = string.get(name)?;
        let guarded = lua.create_function(move |lua, args: MultiValue| {
            refuse_when_spent(lua)?;
            let plain = name == "find" && args.get(3).is_some_and(truthy);
            let cost = estimate(&args, plain, honours_anchor);
            charge(lua, cost, &args)?;
            original.call::<MultiValue>(args)
        })?;
        string.set(name, guarded)?;
    }
    Ok(())
}

/// Starts a fresh pattern budget for the next plugin call.
pub fn reset_spending(lua: &Lua) {
    if let Some(spent) = lua.app_data_ref::<Spent>() {
        spent.0.set(0.0);
    }
}

/// What one call costs: the guard's own reading, spent whatever it decides, and the
/// matcher's worst case.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cost {
    reading: f64,
    matching: f64,
}

fn spent(lua: &Lua) -> mlua::Result<mlua::AppDataRef<'_, Spent>> {
    lua.app_data_ref::<Spent>()
        .ok_or_else(|| mlua::Error::runtime("pattern functions used without a budget"))
}

/// Once the budget is gone, further calls are refused before the guard reads anything (a
/// script could otherwise retry under `pcall` for free).
fn refuse_when_spent(lua: &Lua) -> mlua::Result<()> {
    if spent(lua)?.0.get() >= BUDGET_STEPS {
        return Err(mlua::Error::runtime(
            "the plugin spent its pattern-matching budget for this request",
        ));
    }
    Ok(())
}

fn charge(lua: &Lua, cost: Cost, args: &MultiValue) -> mlua::Result<()> {
    let spent = spent(lua)?;
    let before = spent.0.get() + cost.reading;
    spent.0.set(before);
    if before + cost.matching <= BUDGET_STEPS {
        spent.0.set(before + cost.matching);
        return Ok(());
    }
    let subject = args.front().map_or(0, length_of);
    let pattern = match args.get(1) {
        Some(Value::String(p)) => String::from_utf8_lossy(&p.as_bytes())
            .chars()
            .take(80)
            .collect(),
        _ => String::new(),
    };
    Err(mlua::Error::runtime(format!(
        "pattern `{pattern}` is too costly on a {subject}-byte string: anchor it with `^`, use \
         fewer `*` `+` `-` `?`, check the length first, or use a plain find"
    )))
}

/// Longest decimal text of a Lua number (`%.14g` or a 64-bit integer).
const NUMBER_TEXT: usize = 24;

fn length_of(v: &Value) -> usize {
    match v {
        Value::String(s) => s.as_bytes().len(),
        _ => NUMBER_TEXT,
    }
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::Boolean(false))
}

/// Positions a match can start at, or a repetition can stop at, in `len` bytes.
fn positions(len: usize) -> f64 {
    len as f64 + 1.0
}

fn estimate(args: &MultiValue, plain: bool, honours_anchor: bool) -> Cost {
    let subject_len = args.front().map_or(0, length_of);
    let subject = match args.front() {
        Some(Value::String(s)) => Some(s.as_bytes()),
        _ => None,
    };
    match (plain, args.get(1)) {
        // A plain find compares the needle at every position.
        (true, Some(Value::String(needle))) => Cost {
            reading: 0.0,
            matching: positions(subject_len) * positions(needle.as_bytes().len()),
        },
        (false, Some(Value::String(pattern))) => worst_case_steps(
            &pattern.as_bytes(),
            subject.as_deref(),
            subject_len,
            honours_anchor,
        ),
        // Numbers are matched as their short decimal text; anything else is refused by the
        // original function.
        _ => Cost {
            reading: 0.0,
            matching: positions(subject_len) * positions(NUMBER_TEXT),
        },
    }
}

/// Upper bound of the matcher's steps for one call (see the module docs). A repetition can
/// stop at most at every position of the subject; when that bound is too high, the guard
/// reads the subject for the longest run of bytes the repeated class matches, which is where
/// a repetition really stops (`[^/]*` on a path stops at the next `/`, and `a?` never
/// branches on a subject without an `a`).
fn worst_case_steps(
    pattern: &[u8],
    subject: Option<&[u8]>,
    subject_len: usize,
    honours_anchor: bool,
) -> Cost {
    let anchored = honours_anchor && pattern.first() == Some(&b'^');
    let body = if anchored { &pattern[1..] } else { pattern };
    let items = items(body);
    let n = positions(subject_len);
    let reading = pattern.len() as f64;
    let coarse = bound(&items, body, anchored, n, |_| n);
    let classes: Vec<&[u8]> = items
        .iter()
        .filter_map(|item| match *item {
            Item::Class {
                start,
                end,
                repeat: Repeat::Greedy | Repeat::Lazy | Repeat::Optional,
            } => Some(&body[start..end]),
            _ => None,
        })
        .collect();
    let refining: f64 = classes
        .iter()
        .map(|class| 256.0 * class.len() as f64 + n)
        .sum();
    match subject {
        Some(bytes) if coarse > BUDGET_STEPS && refining <= MAX_REFINING_STEPS => Cost {
            reading: reading + refining,
            matching: bound(&items, body, anchored, n, |class| {
                positions(longest_run(bytes, class))
            }),
        },
        _ => Cost {
            reading,
            matching: coarse,
        },
    }
}

/// The bound of the table in the module docs, with `stops(class)` the positions at which a
/// repetition of `class` may stop.
fn bound(
    items: &[Item],
    pattern: &[u8],
    anchored: bool,
    n: f64,
    stops: impl Fn(&[u8]) -> f64,
) -> f64 {
    let per_start = items.iter().rev().fold(1.0, |rest, item| match *item {
        Item::Class { start, end, repeat } => {
            let width = (end - start) as f64;
            match repeat {
                Repeat::Once => width + rest,
                // Only a class that matches here opens the second branch.
                Repeat::Optional => width + stops(&pattern[start..end]).min(2.0) * rest,
                Repeat::Greedy | Repeat::Lazy => stops(&pattern[start..end]) * (width + rest),
            }
        }
        Item::Balance | Item::BackReference => n + rest,
        Item::Frontier { width } => 2.0 * width as f64 + rest,
        Item::Marker => 1.0 + rest,
    });
    let starts = if anchored { 1.0 } else { n };
    starts * per_start
}

/// The longest stretch of `subject` that `class` matches byte after byte.
fn longest_run(subject: &[u8], class: &[u8]) -> usize {
    let member = members(class);
    let (mut longest, mut current) = (0, 0);
    for &b in subject {
        current = if member[usize::from(b)] {
            current + 1
        } else {
            0
        };
        longest = longest.max(current);
    }
    longest
}

#[cfg(test)]
mod tests;
