//! The breach classes of an independent attack run, each as tests named for the attack: the
//! real binary over real sockets, asserting that nothing reaches an upstream with an identity
//! or under a policy it does not carry, and that no client can exhaust the proxy.

#[path = "../support/mod.rs"]
mod support;

mod advisories;
mod cookies;
mod hosts_headers;
mod logout_csrf;
mod lua_patterns;
mod memory;
mod paths;
mod store_eviction;
mod tokens;
