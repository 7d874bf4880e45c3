//! Portcullis: an identity-aware edge proxy on Pingora.
//!
//! Data flows one way: `config` (files) → `runtime` (each component builds what it owns into
//! an immutable snapshot) → `proxy` (the request phases, which only read the snapshot) → the
//! response. Imports follow the same order: `scripts/check-imports.py` lists the layers and
//! fails on a cycle or an upward import.

pub mod admin;
pub mod backchannel_logout;
pub mod background;
pub mod canonical;
pub mod clock;
pub mod config;
pub mod conn_limits;
pub mod demo;
pub mod dispatch;
pub mod downstream;
pub mod fd_limit;
pub mod forward_auth;
pub mod forwarding;
#[cfg(test)]
mod fuzz_inputs;
pub mod gate;
pub mod head_deadline;
pub mod header_names;
pub mod health;
pub mod host;
pub mod identity;
pub mod log_throttle;
pub mod logging;
pub mod metrics;
pub mod oauth2_endpoints;
pub mod oauth2_paths;
pub mod oidc;
pub mod pages;
pub mod path;
pub mod plugin_answer;
pub mod plugins;
pub mod probes;
pub mod proxy;
pub mod reload;
pub mod request;
pub mod request_id;
pub mod router;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod session;
pub mod session_watch;
pub mod shutdown;
pub mod tls;
pub mod tunnels;
pub mod upstreams;
pub mod user;
