//! `forward_auth`: read here; the ranges and the path are judged by `forward_auth::build`,
//! whose refusals are placed at the entries recorded here.

use super::Validator;
use crate::config::model::*;
use crate::config::schema::*;

impl Validator<'_> {
    pub fn forward_auth(&mut self, s: &ForwardAuthSection) -> ForwardAuthSpec {
        if let Some(p) = &s.path {
            self.record("forward_auth.path", p);
        }
        for (i, range) in s.trusted_proxies.iter().enumerate() {
            self.record(format!("forward_auth.trusted_proxies[{i}]"), range);
        }
        ForwardAuthSpec {
            path: s.path.as_ref().map(|p| p.to_string()),
            trusted_proxies: s.trusted_proxies.iter().map(|t| t.to_string()).collect(),
        }
    }
}
