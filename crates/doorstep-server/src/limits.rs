//! The bounds that keep one caller from taking the service over, and the open streams counted
//! against them: [`Limits`] (every bound and its default, set by `doorstep serve`'s flags) and
//! [`Streams`] (the WatchEvents and ExportEvents streams each token holds open, and the long exports
//! running at once). The connection bounds are applied in [`crate::connections`], the cost of
//! expensive calls in [`crate::gate`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use doorstep_engine::Principal;
use doorstep_engine::error::Error;
use tonic::Status;

use crate::error::to_status;

/// Every bound the service keeps, with its default.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// WatchEvents and ExportEvents streams one token may hold open together.
    pub max_streams_per_token: usize,
    /// Concurrent HTTP/2 streams (calls) on one connection; more wait for the client to close some.
    pub max_streams_per_connection: u32,
    /// Connections open at once; one more is closed as soon as it is accepted. The default leaves
    /// room for a thousand consoles each on a connection of its own (the watch benchmark's case).
    pub max_connections: usize,
    /// Long exports (no limit, or more than one page of events) one token may run at once.
    pub max_exports_per_token: usize,
    /// Long exports running at once on the whole service.
    pub max_exports: usize,
    /// How often the service pings a connection over HTTP/2 to check the peer is still there.
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub http2_keepalive_timeout: Duration,
    /// A connection with no call in flight for this long is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A ticket whose history holds this many events takes no more notes (FAILED_PRECONDITION):
    /// notes are the one action a caller can repeat without end, and every timeline carries them.
    pub max_history_for_notes: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams_per_token: crate::ticket_service::MAX_WATCHES_PER_TOKEN,
            max_streams_per_connection: crate::MAX_STREAMS_PER_CONNECTION,
            max_connections: 4096,
            max_exports_per_token: 2,
            max_exports: 8,
            http2_keepalive_interval: Duration::from_secs(60),
            http2_keepalive_timeout: Duration::from_secs(20),
            idle_timeout: Some(Duration::from_secs(300)),
            max_history_for_notes: 900,
        }
    }
}

/// An export reads more than this many events (or has no limit) is a long one: it may keep a
/// database connection busy for minutes, so fewer of them may run at once.
pub const LONG_EXPORT_EVENTS: i64 = 1000;

#[derive(Debug, Default)]
struct Open {
    /// Token id → (streams, long exports).
    by_token: HashMap<String, (usize, usize)>,
    /// Long exports of every principal.
    exports: usize,
}

/// The streams open now, counted against [`Limits`].
#[derive(Debug)]
pub struct Streams {
    limits: Limits,
    open: Arc<Mutex<Open>>,
}

impl Streams {
    pub fn new(limits: Limits) -> Self {
        Streams {
            limits,
            open: Arc::default(),
        }
    }

    /// The limits counted against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A place for a WatchEvents stream of `principal`, or RESOURCE_EXHAUSTED naming the limit.
    pub fn watch(&self, principal: &Principal) -> Result<StreamSlot, Status> {
        self.take(principal, false)
    }

    /// A place for an ExportEvents stream of `principal` (`long`: see [`LONG_EXPORT_EVENTS`]).
    pub fn export(&self, principal: &Principal, long: bool) -> Result<StreamSlot, Status> {
        self.take(principal, long)
    }

    fn take(&self, principal: &Principal, long: bool) -> Result<StreamSlot, Status> {
        let token = principal.token.as_ref().map(|t| t.id.clone());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if long && open.exports >= self.limits.max_exports {
            return Err(exhausted(format!(
                "{} long exports (no limit, or more than {LONG_EXPORT_EVENTS} events) are running \
                 on this service, its limit (max_exports); retry later or set a smaller limit",
                self.limits.max_exports
            )));
        }
        // The local principal of a loopback service is its operator: not counted per token.
        if let Some(token) = &token {
            let (streams, exports) = open.by_token.get(token).copied().unwrap_or_default();
            if streams >= self.limits.max_streams_per_token {
                return Err(exhausted(format!(
                    "this token has {streams} streams open (WatchEvents and ExportEvents together), \
                     its limit (max_streams_per_token); close one (one WatchEvents stream serves a \
                     whole subtree)"
                )));
            }
            if long && exports >= self.limits.max_exports_per_token {
                return Err(exhausted(format!(
                    "this token runs {exports} long exports (no limit, or more than \
                     {LONG_EXPORT_EVENTS} events) already, its limit (max_exports_per_token); wait \
                     for one to end or set a smaller limit"
                )));
            }
            let entry = open.by_token.entry(token.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(long);
        }
        open.exports += usize::from(long);
        Ok(StreamSlot {
            open: Arc::clone(&self.open),
            token,
            long,
        })
    }
}

fn exhausted(message: String) -> Status {
    to_status(Error::RateLimited(message))
}

/// One open stream counted against its token; given back when the stream is dropped.
#[derive(Debug)]
pub struct StreamSlot {
    open: Arc<Mutex<Open>>,
    token: Option<String>,
    long: bool,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.exports -= usize::from(self.long);
        if let Some(token) = &self.token
            && let Some(entry) = open.by_token.get_mut(token)
        {
            entry.0 -= 1;
            entry.1 -= usize::from(self.long);
            if entry.0 == 0 {
                open.by_token.remove(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doorstep_engine::auth::TokenRef;

    fn holder(id: &str) -> Principal {
        Principal {
            token: Some(TokenRef {
                id: id.into(),
                hash: String::new(),
            }),
            ..Principal::local()
        }
    }

    fn limits() -> Limits {
        Limits {
            max_streams_per_token: 3,
            max_exports_per_token: 1,
            max_exports: 2,
            ..Limits::default()
        }
    }

    #[test]
    fn watches_and_exports_count_together_per_token() {
        let streams = Streams::new(limits());
        let (a, b) = (holder("a"), holder("b"));
        let _w1 = streams.watch(&a).unwrap();
        let _w2 = streams.watch(&a).unwrap();
        let e = streams.export(&a, false).unwrap();
        let refused = streams.watch(&a).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("max_streams_per_token"),
            "{refused:?}"
        );
        assert!(streams.export(&a, false).is_err());
        let _theirs = streams.watch(&b).expect("another token is not affected");
        drop(e);
        let _again = streams.watch(&a).expect("a place is given back");
    }

    #[test]
    fn long_exports_are_capped_per_token_and_overall() {
        let streams = Streams::new(limits());
        let (a, b, c) = (holder("a"), holder("b"), holder("c"));
        let long_a = streams.export(&a, true).unwrap();
        let refused = streams.export(&a, true).unwrap_err();
        assert!(
            refused.message().contains("max_exports_per_token"),
            "{refused:?}"
        );
        let _short = streams
            .export(&a, false)
            .expect("a short export is not a long one");
        let _long_b = streams.export(&b, true).unwrap();
        let refused = streams.export(&c, true).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("max_exports"), "{refused:?}");
        // The local operator is not counted per token, but counts against the service's cap.
        assert!(streams.export(&Principal::local(), true).is_err());
        drop(long_a);
        let _long_c = streams.export(&c, true).expect("a place is given back");
        let local: Vec<_> = (0..10)
            .map(|_| streams.watch(&Principal::local()))
            .collect();
        assert!(
            local.iter().all(Result::is_ok),
            "the local operator has no per-token cap"
        );
    }
}
