//! Configuration: the YAML schema, `${ENV}` secrets, the checks that are about the file (types,
//! unknown keys, cross-references) with file:line:column errors, and loading of the main file
//! plus the upstreams file it names.
//!
//! It builds nothing: the components own their specs (re-exported in `model`) and their builds,
//! which `runtime` runs; `Locations` places a component's `BuildError` at the line that wrote
//! the value. `runtime::load_and_build` is the one way in for `run`, `check` and reload alike,
//! so that `portcullis check` accepts exactly what the proxy would serve.

mod env;
mod load;
mod locate;
pub mod model;
mod problem;
mod schema;
mod validate;

pub use locate::Locations;
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
    read_with_env(path, env)?.into_result()
}

/// A config read from its files, with the problems found in them. The model is whole even
/// with problems (a refused value is replaced by its default), so that the components can
/// still be built from it and one `check` run reports every problem, the file's and the
/// components' alike.
#[derive(Debug)]
pub struct Draft {
    pub config: Config,
    pub problems: Vec<Problem>,
}

impl Draft {
    pub fn into_result(self) -> Result<Config, Problems> {
        if self.problems.is_empty() {
            Ok(self.config)
        } else {
            Err(Problems::sorted(self.problems))
        }
    }
}

/// As `load`, but keeps the model when the files have problems. `Err`: no model at all (a file
/// that cannot be read or parsed).
pub fn read(path: &Path) -> Result<Draft, Problems> {
    read_with_env(path, &|name| std::env::var(name).ok())
}

pub fn read_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Draft, Problems> {
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

    let whole_file = sources.problem_at(None, "");
    let mut v = validate::Validator::new(&sources, Locations::new(whole_file.clone()));
    let server = v.server(&file.server);
    let listeners = v.listeners(&file.listen, &whole_file);
    let logging = v.logging(&file.logging);
    let metrics = v.metrics(&file.metrics, &listeners);
    let upstreams = v.upstreams(&upstreams_file);
    let pool_names: HashSet<String> = upstreams.pools.iter().map(|p| p.name.clone()).collect();
    let sso = v.sso(file.sso.as_ref());
    let forward_auth = v.forward_auth(&file.forward_auth);
    let oidc = file
        .oidc
        .as_ref()
        .and_then(|o| v.oidc(o, sso.mode == crate::oidc::sso::Mode::Proxy));
    let session = v.session(file.session.as_ref(), oidc.as_ref());
    let identity_headers = v.identity_headers(&file.identity_headers);
    let routes = v.routes(&file.routes, &pool_names, file.oidc.is_some());
    let plugins = v.plugins(&file.plugins, path, &routes);
    // An SSO server proxies nothing: it logs users in for the proxies.
    if routes.is_empty() && v.problems.is_empty() && sso.mode != crate::oidc::sso::Mode::Server {
        let mut p = whole_file;
        p.message = "no routes: every request would get 404; add a `routes:` list".into();
        v.problems.push(p);
    }
    let config = Config {
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
        sso,
        forward_auth,
        locations: v.locations,
    };
    Ok(Draft {
        config,
        problems: v.problems,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Edits of the shipped configs as a slip of the hand or a broken generator makes them:
    /// bytes flipped, lines dropped, doubled or cut. Whatever comes of it, loading answers
    /// with a config or with problems, never a panic.
    #[test]
    fn mangled_configs_are_refused_never_a_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| match name {
            "SESSION_KEY" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
            _ => Some("value".to_string()),
        };
        let tokens = [
            ":",
            "-",
            " ",
            "  ",
            "{",
            "}",
            "[",
            "]",
            "\"",
            "'",
            "#",
            "&a",
            "*a",
            "!tag",
            "\t",
            "\n",
            "${",
            "${X}",
            "0",
            "-1",
            "99999999999999999999",
            "1s",
            "0s",
            "10GiB",
            "/",
            "{id}",
            "true",
            "null",
            "~",
            "\u{0}",
            "é",
        ];
        let mut rng = crate::fuzz_inputs::Rng::new(0x5eed_0004);
        // (accepted, refused) per file pair: both must happen, or the edits test nothing.
        let mut outcomes = (0, 0);
        for (main, upstreams) in [
            ("conf/portcullis.yaml", "conf/upstreams.yaml"),
            ("conf/dev.yaml", "conf/dev-upstreams.yaml"),
        ] {
            let main_text = std::fs::read_to_string(root.join(main))
                .unwrap()
                .replace("../plugins/", &format!("{}/plugins/", root.display()));
            let up_text = std::fs::read_to_string(root.join(upstreams)).unwrap();
            let up_name = Path::new(upstreams).file_name().unwrap();
            for _ in 0..400 {
                let mangle_main = rng.below(2) == 0;
                let source = if mangle_main { &main_text } else { &up_text };
                let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(lines.len());
                    match rng.below(4) {
                        0 => {
                            lines.remove(at);
                        }
                        1 => lines.insert(at, lines[at].clone()),
                        2 => {
                            let line = &mut lines[at];
                            let cut = rng.below(line.len() + 1);
                            let cut = (0..=cut)
                                .rev()
                                .find(|&i| line.is_char_boundary(i))
                                .unwrap_or(0);
                            line.truncate(cut);
                        }
                        _ => {
                            let line = &mut lines[at];
                            let pos = rng.below(line.len() + 1);
                            let pos = (0..=pos)
                                .rev()
                                .find(|&i| line.is_char_boundary(i))
                                .unwrap_or(0);
                            line.insert_str(pos, tokens[rng.below(tokens.len())]);
                        }
                    }
                    if lines.is_empty() {
                        break;
                    }
                }
                let mangled = lines.join("\n");
                let main_out = if mangle_main {
                    mangled.clone()
                } else {
                    main_text.clone()
                };
                let up_out = if mangle_main {
                    up_text.clone()
                } else {
                    mangled
                };
                // The shipped main configs name their upstreams file relative to themselves.
                std::fs::write(dir.path().join("main.yaml"), &main_out).unwrap();
                std::fs::write(dir.path().join(up_name), &up_out).unwrap();
                let loaded = std::panic::catch_unwind(|| {
                    load_with_env(&dir.path().join("main.yaml"), &env).is_ok()
                });
                match loaded {
                    Ok(true) => outcomes.0 += 1,
                    Ok(false) => outcomes.1 += 1,
                    Err(_) => panic!("loading panicked on:\n{main_out}\n---\n{up_out}"),
                }
            }
        }
        assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
    }
}
