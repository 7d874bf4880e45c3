//! Log output: text or JSON lines through `tracing`. `PORTCULLIS_LOG` (a `tracing` filter)
//! overrides the configured level.
//!
//! Logging never takes the request path down: a line the sink refuses (a full disk, a closed
//! pipe) is dropped and counted, never a panic. `tracing-subscriber` would otherwise report the
//! failure with `eprintln!`, which panics when stderr itself is the sink that failed — inside
//! whichever task was logging, between a decision and its effect.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
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

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines the sink refused since the start (exported as `portcullis_log_lines_dropped_total`).
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// stderr that never fails: the formatter writes each event with one `write_all`, so one
/// refused write is one dropped line.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().lock().write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// `say_out!("…", …)`: [`say`] on stdout, as `println!` would print.
#[macro_export]
macro_rules! say_out {
    ($($t:tt)*) => { $crate::logging::say($crate::logging::Out::Stdout, format_args!($($t)*)) };
}

/// `say_err!("…", …)`: [`say`] on stderr, as `eprintln!` would print.
#[macro_export]
macro_rules! say_err {
    ($($t:tt)*) => { $crate::logging::say($crate::logging::Out::Stderr, format_args!($($t)*)) };
}

/// A line for the operator outside `tracing` (start-up problems, command output): a failed
/// write is dropped like a log line, so a full disk cannot turn a clean exit into a panic.
pub fn say(out: Out, text: std::fmt::Arguments) {
    let written = match out {
        Out::Stdout => writeln!(io::stdout().lock(), "{text}"),
        Out::Stderr => writeln!(io::stderr().lock(), "{text}"),
    };
    if written.is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Out {
    Stdout,
    Stderr,
}

pub fn init(settings: &LoggingSettings) {
    let filter = std::env::var("PORTCULLIS_LOG")
        .ok()
        .or_else(|| settings.level.clone())
        .unwrap_or_else(|| "info".to_string());
    // Pingora logs through the `log` crate; route it into the same subscriber.
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        say(
            Out::Stderr,
            format_args!("portcullis: ignoring log filter `{filter}`: {e}"),
        );
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| Stderr)
        .log_internal_errors(false);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        say(
            Out::Stderr,
            format_args!("portcullis: logging already initialised: {e}"),
        );
    }
}
