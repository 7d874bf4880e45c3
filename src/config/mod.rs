//! Configuration: the YAML schema, `${ENV}` secrets, validation with file:line:column errors,
//! and loading of the main file plus the upstreams file it names.
//!
//! `load` is the only way in, used by `run`, `check` and (later) the reloader alike, so that
//! `portcullis check` accepts exactly what the proxy would.

mod env;
mod load;
pub mod model;
mod problem;
mod schema;
mod validate;
mod validate_auth;
mod validate_plugins;

pub use model::*;
pub use problem::{Problem, Problems};
pub use validate::DESKTOP_PLACEHOLDER;

use problem::Sources;
use schema::{ConfigFile, UpstreamsFile};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Loads and validates `path` and the upstreams file it names, reading `${VAR}` from the
/// process environment.
pub fn load(path: &Path) -> Result<Config, Problems> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Problems> {
    let mut sources = Sources(vec![path.to_path_buf()]);
    let text = load::read_text(path).map_err(|p| Problems(vec![p]))?;
    let file: ConfigFile = load::parse_document(&sources, 0, &text, env)?;

    let upstreams_path = file
        .upstreams_file
        .as_ref()
        .map(|p| resolve_relative(path, p.as_str()));
    let upstreams_file: UpstreamsFile = match &upstreams_path {
        None => UpstreamsFile::default(),
        Some(up) => {
            sources.0.push(up.clone());
            let text = match load::read_text(up) {
                Ok(t) => t,
                Err(mut p) => {
                    // Point at the line that names the missing file, not at the file itself.
                    if let Some(named) = &file.upstreams_file {
                        let at = sources.problem(named.span(), String::new());
                        p.message = format!("upstreams file {}: {}", up.display(), p.message);
                        p.file = at.file;
                        p.line = at.line;
                        p.column = at.column;
                    }
                    return Err(Problems(vec![p]));
                }
            };
            load::parse_document(&sources, 1, &text, env)?
        }
    };

    let mut v = validate::Validator::new(&sources);
    let whole_file = sources.problem_at(None, "");
    let server = v.server(&file.server);
    let listeners = v.listeners(&file.listen, &whole_file);
    let logging = v.logging(&file.logging);
    let metrics = v.metrics(&file.metrics, &listeners);
    let upstreams = v.upstreams(&upstreams_file);
    let pool_names: HashSet<String> = upstreams.pools.iter().map(|p| p.name.clone()).collect();
    let oidc = file.oidc.as_ref().and_then(|o| v.oidc(o));
    let session = v.session(file.session.as_ref(), oidc.as_ref());
    let identity_headers = v.identity_headers(&file.identity_headers);
    let routes = v.routes(&file.routes, &pool_names, file.oidc.is_some());
    let plugins = v.plugins(&file.plugins, path, &routes);
    if routes.is_empty() && v.problems.is_empty() {
        let mut p = whole_file;
        p.message = "no routes: every request would get 404; add a `routes:` list".into();
        v.problems.push(p);
    }
    if !v.problems.is_empty() {
        let mut problems = v.problems;
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(Problems(problems));
    }
    Ok(Config {
        path: path.to_path_buf(),
        upstreams_path,
        server,
        listeners,
        metrics,
        logging,
        routes,
        upstreams,
        oidc,
        session,
        identity_headers,
        plugins,
    })
}

pub(crate) fn resolve_relative(config_path: &Path, named: &str) -> PathBuf {
    let named = Path::new(named);
    if named.is_absolute() {
        return named.to_path_buf();
    }
    config_path
        .parent()
        .map_or_else(|| named.to_path_buf(), |dir| dir.join(named))
}
