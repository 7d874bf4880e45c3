//! `sso`: the mode and its domain. Whether they fit the rest of the config (public URL on the
//! domain, credentials, a shared store) is `sso::build`'s to judge; its refusals are placed at
//! the fields recorded here.

use super::Validator;
use crate::config::model::*;
use crate::config::schema::*;

impl Validator<'_> {
    pub fn sso(&mut self, s: Option<&SsoSection>) -> SsoSpec {
        let Some(s) = s else {
            return SsoSpec::default();
        };
        let mode = match s.mode.as_str() {
            "standalone" => SsoMode::Standalone,
            "server" => SsoMode::Server,
            "proxy" => SsoMode::Proxy,
            other => {
                self.report(
                    &s.mode,
                    format!("sso mode `{other}` is unknown; use `standalone`, `server` or `proxy`"),
                );
                SsoMode::Standalone
            }
        };
        self.record("sso", &s.mode);
        if let Some(d) = &s.domain {
            self.record("sso.domain", d);
        }
        if let Some(u) = &s.server_url {
            self.record("sso.server_url", u);
        }
        if let Some(a) = &s.server_address {
            self.record("sso.server_address", a);
        }
        SsoSpec {
            mode,
            domain: s.domain.as_ref().map(|d| d.to_string()),
            server_url: s.server_url.as_ref().map(|u| u.to_string()),
            server_address: s.server_address.as_ref().map(|a| a.to_string()),
        }
    }
}
