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
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let mut node = marked_yaml::parse_yaml_with_options(source, text, options)
        .map_err(|e| Problems(vec![load_error(sources, source, &e)]))?;
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

impl Problem {
    /// Attributes a place-less problem to the right file.
    fn in_source(mut self, sources: &Sources, source: usize) -> Problem {
        if let Some(path) = sources.0.get(source) {
            self.file = path.clone();
        }
        self
    }
}
