//! Where each value that a component's build may refuse came from. Components name fields
//! (`certificates[0].key`), the config layer knows spans: `locate` joins the two, so a
//! `BuildError` becomes a `FILE:LINE:COLUMN` problem without any component knowing YAML.

use super::problem::Problem;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Locations {
    at: HashMap<String, Problem>,
    /// The main file, line 0: for a field that has no recorded place.
    whole_file: Problem,
}

impl Locations {
    pub(super) fn new(whole_file: Problem) -> Locations {
        Locations {
            at: HashMap::new(),
            whole_file,
        }
    }

    pub(super) fn record(&mut self, field: impl Into<String>, at: Problem) {
        self.at.insert(field.into(), at);
    }

    /// The problem `message` at `field` (e.g. `listen[1].tls.certificates[0].cert`), or at
    /// the nearest enclosing field that has a place, or at the file.
    pub fn locate(&self, field: &str, message: impl Into<String>) -> Problem {
        let mut path = field;
        let mut found = None;
        while !path.is_empty() {
            if let Some(at) = self.at.get(path) {
                found = Some(at);
                break;
            }
            path = parent_of(path);
        }
        let mut problem = found.unwrap_or(&self.whole_file).clone();
        problem.message = message.into();
        problem
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
fn parent_of(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(at) => &path[..at],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn at(line: usize) -> Problem {
        Problem {
            file: PathBuf::from("p.yaml"),
            line,
            column: 3,
            message: String::new(),
        }
    }

    #[test]
    fn an_unrecorded_field_is_placed_at_its_nearest_recorded_parent() {
        let mut l = Locations::new(at(0));
        l.record("listen[1].tls", at(7));
        l.record("listen[1].tls.certificates[0].key", at(9));
        assert_eq!(l.locate("listen[1].tls.certificates[0].key", "m").line, 9);
        assert_eq!(l.locate("listen[1].tls.certificates[0].cert", "m").line, 7);
        let nowhere = l.locate("session.keys[0]", "bad key");
        assert_eq!((nowhere.line, nowhere.message.as_str()), (0, "bad key"));
    }
}
