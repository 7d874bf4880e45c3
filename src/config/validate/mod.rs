//! Checks about the file and conversion from the file schema to the components' specs, one
//! file per section. Collects every problem instead of stopping at the first, so one `check`
//! run shows them all; records where each value a component judges was written
//! (`Validator::record`).

mod auth;
mod forward_auth;
mod plugins;
mod routes;
mod server;
mod sso;
mod upstreams;

use super::locate::Locations;
use super::problem::{Problem, Sources};
use super::schema::*;
use marked_yaml::Spanned;
use std::time::Duration;

pub(super) struct Validator<'a> {
    pub sources: &'a Sources,
    pub problems: Vec<Problem>,
    /// Places of the fields that components check when they build.
    pub locations: Locations,
}

/// The placeholder a desktop route carries in its prefix.
pub const DESKTOP_PLACEHOLDER: &str = "{id}";

impl<'a> Validator<'a> {
    pub fn new(sources: &'a Sources, locations: Locations) -> Self {
        Validator {
            sources,
            problems: Vec::new(),
            locations,
        }
    }

    /// Remembers where `field` is written, for a component's build to be located there.
    pub fn record<T>(&mut self, field: impl Into<String>, at: &Spanned<T>) {
        let place = self.sources.problem(at.span(), String::new());
        self.locations.record(field, place);
    }

    pub fn report<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(self.sources.problem(at.span(), message));
    }

    pub fn duration(&mut self, value: &Option<Text>, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match humantime::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.report(text, "duration must be greater than zero");
                default
            }
            Err(e) => {
                self.report(
                    text,
                    format!(
                        "`{}` is not a duration ({e}); write e.g. `500ms`, `5s`, `1m`",
                        **text
                    ),
                );
                default
            }
        }
    }

    /// A size in bytes: `512`, `64KiB`, `10MiB`, `1GiB` (also `k`, `KB`, `m`, `MB`, `g`, `GB`).
    pub fn size(&mut self, value: &Option<Text>, default: u64) -> u64 {
        let Some(text) = value else { return default };
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let factor: Option<u64> = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => Some(1),
            "k" | "kb" | "kib" => Some(1 << 10),
            "m" | "mb" | "mib" => Some(1 << 20),
            "g" | "gb" | "gib" => Some(1 << 30),
            _ => None,
        };
        match (digits.parse::<u64>().ok(), factor) {
            (Some(n), Some(f)) if n > 0 => n.saturating_mul(f),
            _ => {
                self.report(
                    text,
                    format!(
                        "`{}` is not a size; write e.g. `512`, `64KiB`, `10MiB`",
                        **text
                    ),
                );
                default
            }
        }
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
