//! The proxy foundation, end to end: the real binary, real upstreams, real sockets.

#[path = "../support/mod.rs"]
mod support;

mod balancing;
mod check;
mod desktops;
mod errors;
mod lifecycle;
mod routing;
