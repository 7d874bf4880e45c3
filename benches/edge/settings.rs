//! The knobs, read from the environment (see benches/README.md).

use super::*;

pub(super) struct Settings {
    pub(super) duration: String,
    pub(super) warmup: String,
    pub(super) threads: u32,
    pub(super) connections: u32,
    pub(super) sessions: usize,
    pub(super) login_concurrency: usize,
    pub(super) login_budget: Duration,
    pub(super) redis_sessions: usize,
    pub(super) desktops: usize,
    pub(super) parts: Vec<u8>,
}

impl Settings {
    pub(super) fn from_env() -> Settings {
        fn var(name: &str, default: &str) -> String {
            std::env::var(name).unwrap_or_else(|_| default.to_string())
        }
        fn number<T: std::str::FromStr>(name: &str, default: &str) -> T {
            let v = var(name, default);
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got `{v}`"))
        }
        let wrk_time = |name: &str, default: &str| {
            let v = var(name, default);
            assert!(
                wrk_seconds(&v).is_some(),
                "{name} must look like 5s, 1m or 10, got `{v}`"
            );
            v
        };
        let settings = Settings {
            duration: wrk_time("DURATION", "5s"),
            warmup: wrk_time("WARMUP", "1s"),
            threads: number("THREADS", "2"),
            connections: number("CONNECTIONS", "32"),
            sessions: number("SESSIONS", "100000"),
            login_concurrency: number("LOGIN_CONCURRENCY", "64"),
            login_budget: Duration::from_secs(number("LOGIN_BUDGET", "180")),
            redis_sessions: number("REDIS_SESSIONS", "15000"),
            desktops: number("DESKTOPS", "10000"),
            parts: var("PARTS", "1,2,3")
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect(),
        };
        assert!(
            wrk_seconds(&settings.duration).unwrap_or(0) > 0,
            "DURATION must be longer than 0"
        );
        assert!(settings.threads >= 1 && settings.connections >= settings.threads);
        assert!(settings.login_concurrency >= 1);
        assert!(
            settings.desktops >= 10,
            "DESKTOPS must be at least 10 (d-5 and the last one are requested)"
        );
        settings
    }
}

/// wrk's duration syntax (`5s`, `2m`, `1h`, `15`) in whole seconds.
pub(super) fn wrk_seconds(v: &str) -> Option<u64> {
    let (n, unit) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1),
        (i, 'm') => (&v[..i], 60),
        (i, 'h') => (&v[..i], 3600),
        _ => (v, 1),
    };
    n.parse::<u64>().ok().map(|n| n * unit)
}
