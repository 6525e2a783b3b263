//! The service's connections: how many may be open at once, and when an idle one is closed.
//!
//! [`admitted`] wraps the accepted connections. Beyond the connection limit a new one is closed at
//! once (the client sees UNAVAILABLE, which it may retry), with a log line at most every ten
//! seconds. Every admitted connection is closed once no call has been in flight on it for the idle
//! timeout (as gRPC's `MAX_CONNECTION_IDLE`: since the last call ended, or since it opened);
//! [`InFlightLayer`] counts each connection's calls, a stream until its response ends. HTTP/2
//! keep-alive pings do not count as calls: they keep a connection alive, not busy.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The calls in flight on one connection, and since when it has had none.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    /// When the connection is to be closed if no call comes; `None` while calls are in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) + timeout)
    }
}

/// The open connections by peer address (one TCP connection per address and port), for the layer
/// that sees a call's peer but not its connection.
#[derive(Debug, Default)]
pub struct Registry {
    open: Mutex<HashMap<SocketAddr, Arc<Activity>>>,
}

impl Registry {
    fn activity(&self, peer: SocketAddr) -> Option<Arc<Activity>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&peer).cloned()
    }
}

/// The connections of `incoming` the service serves: at most `max` at once, each closed after
/// `idle_timeout` without calls.
pub fn admitted<S>(
    incoming: S,
    max: usize,
    idle_timeout: Option<Duration>,
    registry: Arc<Registry>,
) -> impl Stream<Item = io::Result<Connection>>
where
    S: Stream<Item = io::Result<TcpStream>>,
{
    let slots = Arc::new(Semaphore::new(max));
    let refused = Arc::new(AtomicU64::new(0));
    let last_logged = Mutex::new(None::<Instant>);
    incoming.filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => return Some(Err(e)),
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // Dropped: closed at once.
            let count = refused.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = last_logged.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                tracing::warn!(
                    max_connections = max,
                    refused_so_far = count,
                    "connection refused: the service has its limit of connections open"
                );
            }
            return None;
        };
        let peer = stream.peer_addr().ok();
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        });
        if let Some(peer) = peer {
            let mut open = registry.open.lock().unwrap_or_else(|e| e.into_inner());
            open.insert(peer, Arc::clone(&activity));
        }
        Some(Ok(Connection {
            stream,
            peer,
            activity,
            registry: Arc::clone(&registry),
            idle_timeout,
            idle_check: None,
            _permit: permit,
        }))
    })
}

/// An admitted connection: holds its place under the connection limit until it is dropped, and
/// reads as ended once it has been idle for the idle timeout (so the server closes it).
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    peer: Option<SocketAddr>,
    activity: Arc<Activity>,
    registry: Arc<Registry>,
    idle_timeout: Option<Duration>,
    idle_check: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// The connection has been idle past its timeout; otherwise the waker is called when that
    /// should be checked again.
    fn idled_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.idle_timeout else {
            return false;
        };
        loop {
            let now = Instant::now();
            let idle_until = self.activity.idle_deadline(timeout);
            if idle_until.is_some_and(|d| d <= now) {
                return true;
            }
            // With calls in flight, look again a timeout later; the timer is moved only when that
            // changes, not on every read of a busy connection.
            let deadline = idle_until.unwrap_or(now + timeout);
            let check = self
                .idle_check
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            let stale = match idle_until {
                Some(d) => check.deadline() != d,
                None => check.is_elapsed(),
            };
            if stale {
                check.as_mut().reset(deadline);
            }
            if check.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            let mut open = self.registry.open.lock().unwrap_or_else(|e| e.into_inner());
            // A new connection may have reused the address already.
            if open
                .get(&peer)
                .is_some_and(|a| Arc::ptr_eq(a, &self.activity))
            {
                open.remove(&peer);
            }
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending if this.idled_out(cx) => {
                tracing::debug!("idle connection closed");
                // The end of the stream: the server closes the connection.
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A call in flight on its connection; when the last one ends, the connection's idle time starts.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Under the lock, so that a connection checking its deadline sees both or neither.
        let mut since = self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
        }
    }
}

/// The layer that counts each connection's calls in flight (see the module's docs).
#[derive(Debug, Clone)]
pub struct InFlightLayer {
    registry: Arc<Registry>,
}

impl InFlightLayer {
    pub fn new(registry: Arc<Registry>) -> Self {
        InFlightLayer { registry }
    }
}

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            registry: Arc::clone(&self.registry),
        }
    }
}

/// A service whose calls are counted on their connections (see [`InFlightLayer`]).
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    registry: Arc<Registry>,
}

/// The peer of a call, as the server's connection put it in the request.
fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let plain = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr);
    #[cfg(feature = "tls")]
    let plain = plain.or_else(|| {
        request
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.get_ref().remote_addr)
    });
    plain
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Counted<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<Tracked<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call = peer(&request)
            .and_then(|peer| self.registry.activity(peer))
            .map(InFlight::begin);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Tracked { body, _call: call }))
        })
    }
}

/// A response body that keeps its call in flight until it is done with.
#[derive(Debug)]
pub struct Tracked<B> {
    body: B,
    _call: Option<InFlight>,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
