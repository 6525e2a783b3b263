//! What every call leaves for the operator: one log line (method, gRPC code, duration, principal,
//! ticket) and the RPC metrics, from a tower layer around every service ([`ObserveLayer`]); and the
//! gauge of open watch streams ([`WatchGauge`]).
//!
//! A call's code is known only when its response ends (a unary reply carries it in the trailers, a
//! stream at its end), so the line is written when the response body is done with: a stream logs
//! once, when it ends. The gate and the services name the principal and the ticket
//! ([`note_principal`], [`note_ticket`]) into a note the layer keeps for the call. Nothing else of
//! the request is read: no caller's name or phone, no token reaches the line.
//!
//! The metrics go to the `metrics` facade: without a recorder installed (tests, a server without
//! `--metrics-listen`) they cost nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use tonic::Code;

/// Calls by method and gRPC code.
pub const RPC_REQUESTS: &str = "doorstep_rpc_requests_total";
/// Call durations by method, from the request to the end of the response (a stream's whole life).
pub const RPC_DURATION: &str = "doorstep_rpc_duration_seconds";
/// WatchEvents streams open now.
pub const WATCH_STREAMS: &str = "doorstep_watch_streams";

/// What the services learn about a call that the layer cannot read from the wire.
#[derive(Debug, Default)]
struct Note {
    principal: Option<String>,
    ticket: Option<String>,
}

type SharedNote = Arc<Mutex<Note>>;

tokio::task_local! {
    /// The note of the call whose handler is being polled.
    static CALL: SharedNote;
}

fn with_note(f: impl FnOnce(&mut Note)) {
    let _ = CALL.try_with(|note| f(&mut note.lock().unwrap_or_else(|e| e.into_inner())));
}

/// The call being handled was admitted as the principal `name` (its name, never its token).
pub fn note_principal(name: &str) {
    with_note(|note| note.principal = Some(name.to_owned()));
}

/// The call being handled concerns ticket `id`.
pub fn note_ticket(id: &str) {
    with_note(|note| note.ticket = Some(id.to_owned()));
}

/// The layer that observes every call of the server it wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// A service whose every call is logged and counted (see [`ObserveLayer`]).
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Observe<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<Observed<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut call = Call {
            path: request.uri().path().to_owned(),
            start: Instant::now(),
            note: SharedNote::default(),
            code: None,
        };
        let answer = CALL.scope(Arc::clone(&call.note), self.inner.call(request));
        Box::pin(async move {
            match answer.await {
                Ok(response) => {
                    // An error answers at once, in the headers; a reply, in the trailers at its end.
                    call.code = grpc_code(response.headers());
                    Ok(response.map(|body| Observed { body, call }))
                }
                Err(e) => {
                    call.code = Some(Code::Unknown);
                    drop(call);
                    Err(e)
                }
            }
        })
    }
}

/// A response body that finishes its call's observation when it is done with.
#[derive(Debug)]
pub struct Observed<B> {
    body: B,
    call: Call,
}

impl<B: Body + Unpin> Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_code) {
                    this.call.code = Some(code);
                }
            }
            // The connection failed under the stream.
            Some(Err(_)) => {
                this.call.code.get_or_insert(Code::Unavailable);
            }
            None => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One call under observation; dropped (its response sent, failed or abandoned), it is logged and
/// counted, exactly once.
#[derive(Debug)]
struct Call {
    path: String,
    start: Instant,
    note: SharedNote,
    /// `None` at the end: the client went away before the status was sent.
    code: Option<Code>,
}

impl Drop for Call {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let code = self.code.unwrap_or(Code::Cancelled);
        // A path no service knows answers UNIMPLEMENTED; it is named by the caller, so it is not a
        // label (a scanner would grow the series without bound).
        let method = match code {
            Code::Unimplemented => "unknown",
            _ => self.path.trim_start_matches('/'),
        };
        let code_name = code_name(code);
        metrics::counter!(RPC_REQUESTS, "method" => method.to_owned(), "code" => code_name)
            .increment(1);
        metrics::histogram!(RPC_DURATION, "method" => method.to_owned())
            .record(elapsed.as_secs_f64());
        let note = self.note.lock().unwrap_or_else(|e| e.into_inner());
        // Milliseconds to the microsecond.
        let ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        let principal = note.principal.as_deref().unwrap_or("");
        let ticket = note.ticket.as_deref().unwrap_or("");
        // Probes ask every few seconds; their lines would drown the calls.
        if method.starts_with("grpc.") {
            tracing::debug!(method, code = code_name, ms, principal, ticket, "rpc");
        } else {
            tracing::info!(method, code = code_name, ms, principal, ticket, "rpc");
        }
    }
}

/// The `grpc-status` of headers or trailers.
fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.trim().parse::<i32>().ok().map(Code::from_i32)
}

/// The code as the gRPC specification spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Counts one open watch stream while it lives.
#[derive(Debug)]
pub struct WatchGauge(());

impl WatchGauge {
    pub fn open() -> Self {
        metrics::gauge!(WATCH_STREAMS).increment(1.0);
        WatchGauge(())
    }
}

impl Drop for WatchGauge {
    fn drop(&mut self) {
        metrics::gauge!(WATCH_STREAMS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_read_from_grpc_status() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_code(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(grpc_code(&headers), Some(Code::NotFound));
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
    }

    #[tokio::test]
    async fn notes_reach_only_the_call_in_scope() {
        note_principal("outside");
        let note = SharedNote::default();
        CALL.scope(Arc::clone(&note), async {
            note_principal("desk-1");
            note_ticket("T-1");
        })
        .await;
        let note = note.lock().unwrap();
        assert_eq!(note.principal.as_deref(), Some("desk-1"));
        assert_eq!(note.ticket.as_deref(), Some("T-1"));
    }
}
