//! What the client sees when proxying fails: the proxy's own decision if it made one,
//! otherwise the page that fits the error, or nothing when the client itself went away.

use super::ctx::Ctx;
use crate::pages::{self, Failure};
use pingora::proxy::{FailToProxy, Session};
use pingora::{Error, ErrorSource, ErrorType};

/// Writes the error page (unless a response is already under way). The connection stays open
/// for the next request when the page ends the exchange cleanly — the request was read whole
/// and the failure was not the client's; otherwise the page says `Connection: close` and the
/// connection closes, so a client never waits on a keep-alive the proxy will not honour.
pub(super) async fn answer(session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
    let failure = ctx.failure.or_else(|| failure_of(e));
    let Some(failure) = failure else {
        // The client went away or broke the protocol: there is nobody to answer.
        return FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
    };
    ctx.failure = Some(failure);
    // Pingora 0.9 closes the client connection after a failed upstream attempt whatever
    // this answers (`process_request` ignores `can_reuse_downstream`).
    let mut reuse =
        !ctx.proxying && e.esource() != &ErrorSource::Downstream && session.is_body_done();
    if session.response_written().is_none() {
        if !reuse {
            session.set_keepalive(None);
        }
        if let Err(write_err) = pages::respond(session, failure, &ctx.envelope()).await {
            tracing::debug!(request_id = %ctx.request_id, error = %write_err, "could not write error page");
            reuse = false;
        }
    } else {
        // A response was under way: its end is lost, and so is the connection.
        reuse = false;
    }
    FailToProxy {
        error_code: failure.status(),
        can_reuse_downstream: reuse,
    }
}

/// A client that hangs up before its answer is routine (wrk at the end of a run, a closed
/// tab); Pingora logs it at ERROR. It still shows in the access log with its status.
pub(super) fn is_client_hang_up(error: &Error) -> bool {
    error.esource() == &ErrorSource::Downstream
        && matches!(
            error.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
        )
}

/// Turns a proxying error into the page the client should see; `None` when the error is
/// the client's own (nobody left to answer).
fn failure_of(e: &Error) -> Option<Failure> {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(400) => Some(Failure::BadRequest("The request could not be parsed.")),
        HTTPStatus(404) => Some(Failure::NoRoute),
        HTTPStatus(413) => Some(Failure::PayloadTooLarge),
        HTTPStatus(502) => Some(Failure::UpstreamUnreachable),
        HTTPStatus(503) => Some(Failure::NoHealthyBackend),
        HTTPStatus(504) => Some(Failure::UpstreamTimeout),
        ConnectTimedout | ReadTimedout | WriteTimedout => match e.esource() {
            ErrorSource::Downstream => None,
            _ => Some(Failure::UpstreamTimeout),
        },
        _ => match e.esource() {
            ErrorSource::Upstream => Some(Failure::UpstreamUnreachable),
            ErrorSource::Downstream => match e.etype() {
                ReadError | WriteError | ConnectionClosed => None,
                _ => Some(Failure::BadRequest("The request could not be parsed.")),
            },
            ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
                ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure => {
                    Some(Failure::UpstreamUnreachable)
                }
                _ => Some(Failure::Internal),
            },
        },
    }
}
