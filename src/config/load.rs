//! Reading and parsing config files into their schema types, with precise error places.

use super::env::expand_env;
use super::problem::{Problem, Problems, Sources};
use marked_yaml::{LoadError, LoaderOptions};
use serde::de::DeserializeOwned;
use std::path::Path;

pub fn read_text(path: &Path) -> Result<String, Problem> {
    std::fs::read_to_string(path).map_err(|e| Problem {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read file: {e}"),
    })
}

/// Parses one YAML document into `T`. `source` is the file's index in `sources`.
/// An empty document parses as `T::default()`.
pub fn parse_document<T: DeserializeOwned + Default>(
    sources: &Sources,
    source: usize,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T, Problems> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(T::default());
    }
    if let Some(problem) = lone_carriage_return(sources, source, text) {
        return Err(Problems(vec![problem]));
    }
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let mut node = marked_yaml::parse_yaml_with_options(source, text, options)
        .map_err(|e| Problems(vec![within_text(load_error(sources, source, &e), text)]))?;
    let unset = expand_env(&mut node, env);
    if !unset.is_empty() {
        return Err(Problems(
            unset
                .into_iter()
                .map(|(span, msg)| sources.problem(&span, msg))
                .collect(),
        ));
    }
    marked_yaml::from_node::<T>(&node).map_err(|e| {
        let mut message = e.to_string();
        if message.starts_with("missing field") {
            message.push_str(" (required here)");
        }
        let marker = e.start_mark();
        Problems(vec![match marker {
            Some(m) => sources.problem_at(Some(&m), message),
            None => sources.problem_at(None, message).in_source(sources, source),
        }])
    })
}

fn load_error(sources: &Sources, source: usize, e: &LoadError) -> Problem {
    let (marker, message) = match e {
        LoadError::TopLevelMustBeMapping(m) => (Some(*m), "the top level must be a mapping".into()),
        LoadError::TopLevelMustBeSequence(m) => {
            (Some(*m), "the top level must be a sequence".into())
        }
        LoadError::UnexpectedAnchor(m) => (
            Some(*m),
            "YAML anchors and aliases are not supported; repeat the value".into(),
        ),
        LoadError::MappingKeyMustBeScalar(m) => {
            (Some(*m), "mapping keys must be plain strings".into())
        }
        LoadError::UnexpectedTag(m) => (Some(*m), "YAML tags (`!name`) are not supported".into()),
        LoadError::ScanError(m, err) => (Some(*m), format!("YAML syntax error: {}", err.info())),
        LoadError::DuplicateKey(inner) => {
            let prev = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            (
                inner.key.span().start().copied(),
                format!(
                    "duplicate key `{}` (first defined on line {prev})",
                    inner.key.as_str()
                ),
            )
        }
    };
    match marker {
        Some(m) => sources.problem_at(Some(&m), message),
        None => sources.problem_at(None, message).in_source(sources, source),
    }
}

/// YAML reads a `\r` without a `\n` as a line break, editors and `grep -n` do not: every line
/// number after one would point elsewhere than the operator looks. Refused, at its place.
fn lone_carriage_return(sources: &Sources, source: usize, text: &str) -> Option<Problem> {
    let bytes = text.as_bytes();
    let at = (0..bytes.len()).find(|&i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n'))?;
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    Some(Problem {
        file: sources.0.get(source).cloned().unwrap_or_default(),
        line,
        column,
        message: "a carriage return (\\r) without a line feed: use \\n or \\r\\n line endings"
            .into(),
    })
}

/// The parser places an error at the end of input one line past the last (it reads as if the
/// file ended with a line break); an operator's editor has no such line, so such a place
/// becomes the end of the file's last line.
fn within_text(mut problem: Problem, text: &str) -> Problem {
    let lines = text.lines().count().max(1);
    if problem.line > lines {
        let last = text.lines().last().unwrap_or_default();
        problem.line = lines;
        problem.column = last.chars().count() + 1;
        problem.message.push_str(" (at the end of the file)");
    }
    problem
}

impl Problem {
    /// Attributes a place-less problem to the right file.
    fn in_source(mut self, sources: &Sources, source: usize) -> Problem {
        if let Some(path) = sources.0.get(source) {
            self.file = path.clone();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax_error(text: &str) -> Problem {
        let sources = Sources(vec!["c.yaml".into()]);
        let never = |_: &str| None;
        match parse_document::<serde_json::Value>(&sources, 0, text, &never) {
            Err(Problems(mut p)) if p.len() == 1 => p.remove(0),
            other => panic!("expected one problem for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn an_error_at_the_end_of_input_points_at_a_line_the_file_has() {
        for (text, line, column) in [
            ("a: [", 1, 5),
            ("a: 1\nb: [", 2, 5),
            ("a: 1\nb: [\n", 2, 5),
            ("a: 1\r\nb: [\r\n", 2, 5),
        ] {
            let p = syntax_error(text);
            assert_eq!((p.line, p.column), (line, column), "{text:?}: {p:?}");
            assert!(p.message.ends_with("(at the end of the file)"), "{p:?}");
        }
    }

    #[test]
    fn an_error_inside_the_file_keeps_its_place() {
        let p = syntax_error("a: [1,\nb: ]\nc: 3\n");
        assert!(
            p.line <= 3 && !p.message.contains("end of the file"),
            "{p:?}"
        );
    }

    #[test]
    fn a_lone_carriage_return_is_refused_at_its_place() {
        for (text, line, column) in [
            ("\r[", 1, 1),
            ("a: 1\nb: x\ry\n", 2, 5),
            ("a: 1\r\nb:\r", 2, 3),
        ] {
            let p = syntax_error(text);
            assert_eq!((p.line, p.column), (line, column), "{text:?}: {p:?}");
            assert!(p.message.contains("carriage return"), "{p:?}");
        }
    }
}
