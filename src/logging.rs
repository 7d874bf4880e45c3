//! Log output: text or JSON lines through `tracing`. `PORTCULLIS_LOG` (a `tracing` filter)
//! overrides the configured level.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggingSettings {
    pub format: LogFormat,
    pub level: Option<String>,
    pub access_log_user: bool,
}

pub fn init(settings: &LoggingSettings) {
    let filter = std::env::var("PORTCULLIS_LOG")
        .ok()
        .or_else(|| settings.level.clone())
        .unwrap_or_else(|| "info".to_string());
    // Pingora logs through the `log` crate; route it into the same subscriber.
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("portcullis: ignoring log filter `{filter}`: {e}");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("portcullis: logging already initialised: {e}");
    }
}
