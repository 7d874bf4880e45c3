//! The documentation against the code: the config reference names exactly the keys the config
//! schema has, and every whole config shown in docs/ and the README passes `portcullis check`.

#[path = "../support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `struct name -> [(key as written in YAML, field type)]`, read from the serde structs.
fn schema_structs() -> BTreeMap<String, Vec<(String, String)>> {
    let src = std::fs::read_to_string(Path::new(ROOT).join("src/config/schema.rs")).unwrap();
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    let mut rename: Option<String> = None;
    for line in src.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            current = Some((
                rest.split_whitespace().next().unwrap().to_string(),
                Vec::new(),
            ));
            continue;
        }
        if line == "}" {
            if let Some((name, fields)) = current.take() {
                structs.insert(name, fields);
            }
            continue;
        }
        let Some((_, fields)) = current.as_mut() else {
            continue;
        };
        if let Some(r) = line.strip_prefix("#[serde(rename = \"") {
            rename = r.split('"').next().map(str::to_string);
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub ") {
            let (name, ty) = rest.split_once(':').unwrap();
            let key = rename.take().unwrap_or_else(|| name.trim().to_string());
            fields.push((key, ty.trim().trim_end_matches(',').to_string()));
        }
    }
    structs
}

/// Every key path: `server.threads`, `listen[].tls.cert`, `upstreams.<name>.backends`.
fn key_paths() -> BTreeSet<String> {
    let structs = schema_structs();
    let mut out = BTreeSet::new();
    fn walk(
        structs: &BTreeMap<String, Vec<(String, String)>>,
        name: &str,
        prefix: &str,
        out: &mut BTreeSet<String>,
    ) {
        for (key, ty) in &structs[name] {
            let mut path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if ty.starts_with("HashMap<") {
                path.push_str(".<name>");
            } else if ty.contains("Vec<") && ty.contains("Section") {
                path.push_str("[]");
            }
            let inner = ty
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .find(|t| structs.contains_key(*t) && *t != name);
            match inner {
                Some(child) => walk(structs, child, &path, out),
                None => {
                    out.insert(path);
                }
            }
        }
    }
    walk(&structs, "ConfigFile", "", &mut out);
    walk(&structs, "UpstreamsFile", "", &mut out);
    out
}

/// Key paths the reference documents: the first backticked cell of each table row.
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/config-reference.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_config_reference_names_exactly_the_keys_of_the_schema() {
    let (code, docs) = (key_paths(), documented());
    assert!(
        code.len() > 80,
        "the schema walk found only {} keys",
        code.len()
    );
    let undocumented: Vec<_> = code.difference(&docs).collect();
    let unknown: Vec<_> = docs.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "in the code but not in docs/config-reference.md: {undocumented:?}\n\
         in docs/config-reference.md but not in the code: {unknown:?}"
    );
}

/// Fenced ```yaml blocks whose first line is `# portcullis.yaml` are whole configs; the block
/// right after one, starting `# upstreams.yaml`, is its upstreams file (else a default one).
fn whole_configs(text: &str) -> Vec<(String, Option<String>)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```yaml" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(body.join("\n") + "\n");
        }
    }
    let mut configs = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.starts_with("# portcullis.yaml") {
            let upstreams = blocks
                .get(i + 1)
                .filter(|n| n.starts_with("# upstreams.yaml"))
                .cloned();
            configs.push((b.clone(), upstreams));
        }
    }
    configs
}

#[test]
fn every_whole_config_in_the_docs_passes_check() {
    let mut files: Vec<_> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.push(Path::new(ROOT).join("README.md"));
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (config, upstreams) in whole_configs(&text) {
            let upstreams = upstreams.unwrap_or_else(|| {
                "upstreams:\n  app: { backends: [\"127.0.0.1:9\"] }\n  console: { backends: [\"127.0.0.1:9\"] }\n  api: { backends: [\"127.0.0.1:9\"] }\n".into()
            });
            let config = config.replace("${OIDC_CLIENT_SECRET}", "secret").replace(
                "${SESSION_KEY}",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            );
            let (ok, err) = support::proxy::check(&config, &upstreams);
            assert!(
                ok,
                "{}: a config does not pass check:\n{config}\n{err}",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} whole configs found in docs/");
}
