//! Plugins: each script is read here; `plugins::build` runs it once in its sandbox before the
//! config is accepted, and its refusal is placed at the script's entry.

use super::Validator;
use crate::config::model::RouteSpec;
use crate::config::schema::PluginSection;
use crate::plugins::PluginSpec;
use std::collections::HashSet;
use std::path::Path;

impl Validator<'_> {
    pub fn plugins(
        &mut self,
        sections: &[PluginSection],
        config_path: &Path,
        routes: &[RouteSpec],
    ) -> Vec<PluginSpec> {
        let route_names: HashSet<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for p in sections {
            let path = crate::config::resolve_relative(config_path, p.script.as_str());
            let shown = path.display().to_string();
            let name = path
                .file_stem()
                .map_or_else(|| shown.clone(), |s| s.to_string_lossy().into_owned());
            if let Some(listed) = &p.routes {
                for r in listed {
                    if !route_names.contains(r.as_str()) {
                        self.report(r, format!("no route is named `{}`", r.as_str()));
                    }
                }
            }
            if !names.insert(name.clone()) {
                self.report(
                    &p.script,
                    format!("a plugin named `{name}` is already listed"),
                );
                continue;
            }
            let source = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) => {
                    self.report(&p.script, format!("cannot read plugin {shown}: {e}"));
                    continue;
                }
            };
            // Run by `plugins::build`; a script it refuses is placed at its entry.
            self.record(format!("plugins[{}].script", out.len()), &p.script);
            out.push(PluginSpec {
                name,
                path: shown,
                source,
                routes: p
                    .routes
                    .as_ref()
                    .map(|r| r.iter().map(|n| n.to_string()).collect()),
                config: p.config.clone().unwrap_or(serde_json::Value::Null),
            });
        }
        out
    }
}
