//! Configuration errors that point at the exact place in the file, like a compiler does.

use marked_yaml::{Marker, Span};
use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the place is not known (e.g. a file that could not be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// In file order, as a compiler lists them.
    pub fn sorted(mut problems: Vec<Problem>) -> Problems {
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Problems(problems)
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The files of one load, indexed by the `source` number marked_yaml stores in each marker.
#[derive(Debug, Default, Clone)]
pub struct Sources(pub Vec<PathBuf>);

impl Sources {
    pub fn problem_at(&self, marker: Option<&Marker>, message: impl Into<String>) -> Problem {
        let (file, line, column) = match marker {
            Some(m) => (
                self.0.get(m.source()).cloned().unwrap_or_default(),
                m.line(),
                m.column(),
            ),
            None => (self.0.first().cloned().unwrap_or_default(), 0, 0),
        };
        Problem {
            file,
            line,
            column,
            message: message.into(),
        }
    }

    pub fn problem(&self, span: &Span, message: impl Into<String>) -> Problem {
        self.problem_at(span.start(), message)
    }
}
