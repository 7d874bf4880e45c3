//! OpenID Connect at the edge, end to end: the real binary against a test provider that signs
//! real RS256 JWTs, with a cookie-keeping browser over real sockets.

#[path = "../support/mod.rs"]
mod support;

mod attacks;
mod backchannel;
mod flow;
mod fragments;
mod policy;
mod refresh_outage;
mod tunnels;
