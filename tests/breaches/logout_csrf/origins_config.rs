//! A route's `origins` list as `check` judges it.

fn check(config: &str) -> (bool, String) {
    crate::support::proxy::check(
        config,
        "upstreams:\n  app: { backends: [\"127.0.0.1:9001\"] }\n",
    )
}

const CONFIG_HEAD: &str =
    "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nroutes:\n";

#[test]
fn route_origins_that_are_not_origins_are_refused_at_their_line() {
    let entries = [
        ("https://console.example.com/", "trailing `/`"),
        ("\"null\"", "`null` is the origin of sandboxed frames"),
        ("\"https://*.example.com\"", "wildcards are not supported"),
        ("https://user@console.example.com", "no user info"),
        ("ftp://console.example.com", "only http and https"),
        (
            "https://console.example.com:443",
            "browsers send it as `https://console.example.com`",
        ),
        ("https://console.example.com/app", "no path"),
        ("console.example.com", "is not an origin"),
    ];
    let mut config = format!("{CONFIG_HEAD}  - prefix: /\n    upstream: app\n    origins:\n");
    for (entry, _) in &entries {
        config.push_str(&format!("      - {entry}\n"));
    }
    let (ok, stderr) = check(&config);
    assert!(!ok, "accepted:\n{config}");
    for (i, (_, why)) in entries.iter().enumerate() {
        let line = 8 + i;
        let reported = stderr
            .lines()
            .find(|l| l.contains(&format!("portcullis.yaml:{line}:")))
            .unwrap_or_else(|| panic!("line {line} not reported in:\n{stderr}"));
        assert!(reported.contains(why), "line {line}: {reported}");
    }
}

#[test]
fn websocket_origins_still_loads_as_origins() {
    let route = "  - { prefix: /, upstream: app, websocket: true, KEY: [\"https://console.example.com\"] }\n";
    for key in ["origins", "websocket_origins"] {
        let (ok, stderr) = check(&format!("{CONFIG_HEAD}{}", route.replace("KEY", key)));
        assert!(ok, "{key}: {stderr}");
    }
    let both = "  - { prefix: /, upstream: app, origins: [\"https://a.example\"], websocket_origins: [\"https://b.example\"] }\n";
    let (ok, stderr) = check(&format!("{CONFIG_HEAD}{both}"));
    assert!(!ok && stderr.contains("origins"), "{stderr}");
}
