//! The YAML config loader: parse, `${ENV}` expansion, validation, and then the same builds
//! `portcullis check` runs (`runtime::build_fixed`, `runtime::build`) on a config without
//! problems.
//!
//! Input: the main file; after a line `%%`, the upstreams file (written as `upstreams.yaml`
//! beside it). A plugin script `plugin.lua` lies beside them too. `${SESSION_KEY}` and
//! `${CLIENT_SECRET}` are set, every other variable is unset.
//!
//! Invariants: a file gives a config or problems, never a panic; every problem has a message
//! and names one of the two files at a line the file has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::config;
use std::path::Path;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    // The loader reads whatever files the config names. Device and process files could make
    // a read never end; they are not what this target is about.
    if [&b"/dev"[..], b"/proc", b"/sys"]
        .iter()
        .any(|p| data.windows(p.len()).any(|w| w == *p))
    {
        return;
    }
    let (main, upstreams) = match data.windows(4).position(|w| w == b"\n%%\n") {
        Some(i) => (&data[..i + 1], &data[i + 4..]),
        None => (data, &b""[..]),
    };
    let dir = directory();
    let main_path = dir.join("portcullis.yaml");
    let upstreams_path = dir.join("upstreams.yaml");
    std::fs::write(&main_path, main).expect("write config");
    std::fs::write(&upstreams_path, upstreams).expect("write upstreams");

    let draft = match config::read_with_env(&main_path, &env) {
        Ok(draft) => draft,
        Err(problems) => {
            located(
                &problems.0,
                &[(&main_path, main), (&upstreams_path, upstreams)],
            );
            return;
        }
    };
    located(
        &draft.problems,
        &[(&main_path, main), (&upstreams_path, upstreams)],
    );
    let Ok(config) = draft.into_result() else {
        return;
    };
    // What `check` and `run` build from a config without problems; refusals are fine.
    portcullis_fuzz::block_on(async {
        let _ = portcullis::runtime::build_fixed(&config);
        let _ = portcullis::runtime::build(&config, None);
    });
});

fn env(name: &str) -> Option<String> {
    match name {
        "SESSION_KEY" => Some(portcullis_fuzz::SESSION_KEY.into()),
        "CLIENT_SECRET" => Some("fuzz-client-secret".into()),
        _ => None,
    }
}

/// The scratch directory with the fixed plugin script in it.
fn directory() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = portcullis_fuzz::workdir().join("config");
        std::fs::create_dir_all(&dir).expect("config directory");
        std::fs::write(
            dir.join("plugin.lua"),
            "function on_request(req)\n  if req.path:find('^/blocked') then return 403 end\nend\n",
        )
        .expect("plugin");
        dir
    })
}

/// Every problem says something and points into a file we wrote, at a line it has (0: the
/// whole file).
fn located(problems: &[config::Problem], files: &[(&Path, &[u8])]) {
    for p in problems {
        assert!(
            !p.message.trim().is_empty(),
            "a problem without a message: {p:?}"
        );
        if let Some((_, text)) = files.iter().find(|(path, _)| *path == p.file) {
            let lines = text.split(|&b| b == b'\n').count();
            assert!(
                p.line <= lines + 1,
                "problem at line {} of a {lines}-line file: {p:?}",
                p.line
            );
        }
    }
}
