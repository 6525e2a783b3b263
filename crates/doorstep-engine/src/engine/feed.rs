//! The watch feed: one reader per process follows the committed event log and hands each batch it
//! reads to every open watch, which filters it in memory by subtree and visibility. A thousand
//! consoles cost one store query per commit (or per second), not one each.
//!
//! The reader keeps the last [`FEED_HOLDS`] events it read, as contiguous batches. A watch that starts
//! (or resumes) behind them catches up from the store first, as a watch always did, then takes the
//! feed's batches from where its reads ended; one that starts within them takes the batches at once. A watch whose client stops reading is not waited for:
//! once the feed has dropped the batch it needs next, [`Watch::fallen_behind`] says so, and the caller
//! ends it, telling the client where to resume.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use doorstep_domain::{Ticket, TicketId};
use doorstep_store::{Store, StoredEvent};
use tokio::sync::{OnceCell, watch};

use crate::access::Role;
use crate::auth::Principal;
use crate::engine::Engine;
use crate::error::Error;

/// How many events the feed reads from the store at a time.
pub const FEED_BATCH: u32 = 1000;
/// How many of the latest events the feed keeps for watches that are a little behind: the slack a
/// slow client has (about ten seconds of a busy district) before its watch is ended.
pub const FEED_HOLDS: usize = 10_000;
/// How many events a watch that is behind the feed reads from the store at a time.
pub const CATCH_UP_BATCH: u32 = 500;
/// The feed re-reads the log at least this often, to see commits made by other replicas; a watch
/// with nothing new returns empty this often, so its caller can re-check the token.
pub const FEED_POLL: Duration = Duration::from_secs(1);

/// The events the reader has read and not yet dropped, and where they start and end.
#[derive(Debug)]
pub(crate) struct Feed {
    /// Read by every watch for every batch; written by the reader alone.
    ring: RwLock<Ring>,
    /// The last seq of the batches dropped to make room (a watch before it has lost what it needs);
    /// outside the lock, as a watch waiting on a slow client checks it at every batch.
    dropped: AtomicI64,
    /// The seq up to which the feed has read; a new batch changes it.
    heads: watch::Sender<i64>,
    started: AtomicBool,
    /// How many events it keeps ([`FEED_HOLDS`] unless set).
    holds: AtomicUsize,
}

/// Contiguous batches covering the seqs in `(start, head]`.
#[derive(Debug)]
struct Ring {
    start: i64,
    head: i64,
    batches: VecDeque<Arc<Batch>>,
    events: usize,
}

/// One read of the log: every committed event after the previous batch's `last` up to its own,
/// with its ticket's node path.
#[derive(Debug)]
struct Batch {
    last: i64,
    /// Shared with every watch that shows them, not copied per watch.
    events: Vec<(String, Arc<StoredEvent>)>,
    /// The batch's tickets as they are now, read once for every handling unit's watch.
    tickets: OnceCell<HashMap<TicketId, Ticket>>,
}

impl Feed {
    /// A feed that has read up to `head` (nothing held yet).
    pub(crate) fn new(head: i64) -> Feed {
        Feed {
            dropped: AtomicI64::new(0),
            ring: RwLock::new(Ring {
                start: head,
                head,
                batches: VecDeque::new(),
                events: 0,
            }),
            heads: watch::channel(head).0,
            started: AtomicBool::new(false),
            holds: AtomicUsize::new(FEED_HOLDS),
        }
    }

    fn ring(&self) -> RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn ring_mut(&self) -> RwLockWriteGuard<'_, Ring> {
        self.ring.write().unwrap_or_else(|e| e.into_inner())
    }

    fn head(&self) -> i64 {
        self.ring().head
    }

    /// The batches after `position`, or `None` if the feed no longer holds all of them.
    fn after(&self, position: i64) -> Option<Vec<Arc<Batch>>> {
        let ring = self.ring();
        if position < ring.start {
            return None;
        }
        let first = ring.batches.partition_point(|b| b.last <= position);
        Some(ring.batches.range(first..).cloned().collect())
    }

    /// Lets go of every batch held, so that watches read on from the store: after a node moved, the
    /// paths the batches were read with are no longer where their tickets are. Not counted as dropped
    /// (no watch is ended for it).
    pub(crate) fn forget(&self) {
        let mut ring = self.ring_mut();
        ring.batches.clear();
        ring.events = 0;
        ring.start = ring.head;
    }

    /// Whether the feed dropped a batch holding events after `position` to make room.
    fn dropped_past(&self, position: i64) -> bool {
        position < self.dropped.load(Ordering::Acquire)
    }

    /// A reader starting long after the engine opened starts at the end of the log, not at what was
    /// its end then (a watch behind that catches up from the store).
    fn skip_to(&self, last: i64) {
        {
            let mut ring = self.ring_mut();
            if !ring.batches.is_empty() || last <= ring.head {
                return;
            }
            ring.start = last;
            ring.head = last;
        }
        self.heads.send_replace(last);
    }

    fn push(&self, events: Vec<(String, StoredEvent)>) {
        let Some(last) = events.last().map(|(_, e)| e.seq) else {
            return;
        };
        let events: Vec<_> = events.into_iter().map(|(p, e)| (p, Arc::new(e))).collect();
        let holds = self.holds.load(Ordering::Relaxed);
        {
            let mut ring = self.ring_mut();
            let batch = Batch {
                last,
                events,
                tickets: OnceCell::new(),
            };
            ring.events += batch.events.len();
            ring.batches.push_back(Arc::new(batch));
            ring.head = last;
            while ring.events > holds && ring.batches.len() > 1 {
                if let Some(old) = ring.batches.pop_front() {
                    ring.events -= old.events.len();
                    ring.start = old.last;
                    self.dropped.store(old.last, Ordering::Release);
                }
            }
        }
        self.heads.send_replace(last);
    }
}

/// Follows the committed log until the engine is dropped: woken by this process's commits, polling
/// at least every [`FEED_POLL`] for other replicas', reading up to [`FEED_BATCH`] events at a time
/// after the last one read. The store makes an event visible only once every lower seq is, so
/// reading on from the last seq read never skips one.
async fn follow(feed: Arc<Feed>, store: Arc<dyn Store>, mut committed: watch::Receiver<i64>) {
    match store.last_seq().await {
        Ok(last) => feed.skip_to(last),
        Err(e) => tracing::warn!(error = %e, "watch feed: reading the last seq failed"),
    }
    loop {
        // Marked seen before reading, so no commit can slip between the read and the wait.
        committed.borrow_and_update();
        match store.events_with_paths_after(feed.head(), FEED_BATCH).await {
            Ok(events) => {
                let full = events.len() == FEED_BATCH as usize;
                feed.push(events);
                if full {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "watch feed: reading the event log failed"),
        }
        if let Ok(Err(_)) = tokio::time::timeout(FEED_POLL, committed.changed()).await {
            return;
        }
        if committed.has_changed().is_err() {
            return;
        }
    }
}

impl Engine {
    /// The feed's reader, the first time it is asked for (`None` after): the caller spawns it on its
    /// runtime (the engine has none of its own). It ends once the engine is dropped.
    pub fn feed_reader(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        if self.feed.started.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(follow(
            Arc::clone(&self.feed),
            Arc::clone(self.store()),
            self.subscribe(),
        ))
    }

    /// How many of the latest events the feed keeps for watches that are a little behind (default
    /// [`FEED_HOLDS`]): the slack a slow client has before its watch is ended.
    pub fn set_feed_holds(&self, events: usize) {
        self.feed.holds.store(events.max(1), Ordering::Relaxed);
    }

    /// A watch of the events of `subtree` (already scoped to the principal, see
    /// [`Engine::subtree`]) after `after_seq`, as the principal may see them.
    pub fn watch(
        self: &Arc<Self>,
        principal: Principal,
        subtree: Option<String>,
        after_seq: i64,
    ) -> Watch {
        Watch {
            heads: self.feed.heads.subscribe(),
            engine: Arc::clone(self),
            principal,
            subtree,
            position: after_seq,
            // Within what the feed holds, the store has nothing to add.
            live: self.feed.after(after_seq).is_some(),
        }
    }
}

/// One console's watch: its events in seq order, each once.
#[derive(Debug)]
pub struct Watch {
    engine: Arc<Engine>,
    principal: Principal,
    subtree: Option<String>,
    /// Every event of the subtree up to this seq has been handed out.
    position: i64,
    /// Taking the feed's batches (otherwise catching up from the store).
    live: bool,
    heads: watch::Receiver<i64>,
}

impl Watch {
    /// The next events the principal may see, in seq order: from the store while the watch is
    /// behind what the feed holds, then from the feed. Empty when nothing came within
    /// [`FEED_POLL`], so the caller can re-check the token.
    pub async fn next(&mut self) -> Result<Vec<Arc<StoredEvent>>, Error> {
        if !self.live {
            return self.catch_up().await;
        }
        loop {
            self.heads.borrow_and_update();
            match self.engine.feed.after(self.position) {
                // The feed moved on while the watch was busy: the store still has it all.
                None => {
                    self.live = false;
                    return self.catch_up().await;
                }
                Some(batches) if !batches.is_empty() => {
                    let from = self.position;
                    self.position = batches.last().map_or(from, |b| b.last);
                    return self.visible(&batches, from).await;
                }
                Some(_) => {}
            }
            match tokio::time::timeout(FEED_POLL, self.heads.changed()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(Err(_)) => return Err(Error::Internal("the watch feed stopped".into())),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Resolves once the feed has dropped the batch this watch needs next, i.e. its client has
    /// fallen more than the feed holds ([`FEED_HOLDS`]) behind the log; never while catching up from
    /// the store.
    pub async fn fallen_behind(&self) {
        if !self.live {
            return std::future::pending().await;
        }
        let mut heads = self.engine.feed.heads.subscribe();
        loop {
            if self.engine.feed.dropped_past(self.position) {
                return;
            }
            if heads.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// One read from the store after the watch's position, as a watch always read. Once a read
    /// reaches the end of the log, it holds every event the feed had read before it started, so the
    /// watch goes on from the feed.
    async fn catch_up(&mut self) -> Result<Vec<Arc<StoredEvent>>, Error> {
        let covered = self.engine.feed.head();
        let batch = self
            .engine
            .events_after(self.subtree.as_deref(), self.position, CATCH_UP_BATCH)
            .await?;
        if let Some(last) = batch.last() {
            self.position = last.seq;
        }
        if batch.len() < CATCH_UP_BATCH as usize {
            self.position = self.position.max(covered);
            self.live = true;
        }
        let visible = self.engine.visible_events(&self.principal, batch).await?;
        Ok(visible.into_iter().map(Arc::new).collect())
    }

    /// The events of the feed's batches after `from` that the principal may see.
    async fn visible(
        &self,
        batches: &[Arc<Batch>],
        from: i64,
    ) -> Result<Vec<Arc<StoredEvent>>, Error> {
        let mut out = Vec::new();
        for batch in batches {
            let handled = match self.principal.role {
                Role::Unit => Some(self.handled(batch, from).await?),
                _ => None,
            };
            let selected = select(
                &batch.events,
                from,
                self.subtree.as_deref(),
                handled.as_ref(),
            );
            if crate::reach::sees_every_caller(&self.principal) || selected.is_empty() {
                out.extend(selected);
            } else {
                let tickets = self.tickets(batch).await?;
                out.extend(crate::reach::redact_shared(
                    &self.principal,
                    tickets,
                    selected,
                ));
            }
        }
        Ok(out)
    }

    /// The batch's tickets as they are now, read once for every watch that needs them.
    async fn tickets<'b>(&self, batch: &'b Batch) -> Result<&'b HashMap<TicketId, Ticket>, Error> {
        batch
            .tickets
            .get_or_try_init(|| async {
                let mut ids: Vec<TicketId> = batch
                    .events
                    .iter()
                    .map(|(_, e)| e.ticket_id.clone())
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let tickets = self.engine.store().get_tickets(&ids).await?;
                Ok::<_, Error>(tickets.into_iter().map(|t| (t.id.clone(), t)).collect())
            })
            .await
    }

    /// For a handling unit: which of the batch's tickets in the subtree it may see now (it leads or
    /// co-handles them), the rule [`Engine::visible_events`] applies, on tickets read once per batch.
    async fn handled(&self, batch: &Batch, from: i64) -> Result<HashMap<TicketId, bool>, Error> {
        let tickets = self.tickets(batch).await?;
        let mut seen = HashMap::new();
        for (path, event) in &batch.events {
            if event.seq <= from
                || !in_subtree(self.subtree.as_deref(), path)
                || seen.contains_key(&event.ticket_id)
            {
                continue;
            }
            let visible = match tickets.get(&event.ticket_id) {
                Some(ticket) => self.engine.may_see(&self.principal, ticket).await?,
                None => false,
            };
            seen.insert(event.ticket_id.clone(), visible);
        }
        Ok(seen)
    }
}

/// A node path in the subtree rooted at `root` (a node path prefix; `None` = everywhere), as the
/// store's subtree reads decide it.
fn in_subtree(root: Option<&str>, path: &str) -> bool {
    root.is_none_or(|root| path.starts_with(root))
}

/// The events after `from` in the subtree; with `handled`, only those of tickets it marks visible.
fn select(
    events: &[(String, Arc<StoredEvent>)],
    from: i64,
    subtree: Option<&str>,
    handled: Option<&HashMap<TicketId, bool>>,
) -> Vec<Arc<StoredEvent>> {
    events
        .iter()
        .filter(|(path, event)| {
            event.seq > from
                && in_subtree(subtree, path)
                && handled.is_none_or(|h| h.get(&event.ticket_id).copied().unwrap_or(false))
        })
        .map(|(_, event)| Arc::clone(event))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use doorstep_domain::{Actor, Change, Event, Status};

    fn stored(seq: i64, ticket: &str, path: &str) -> (String, StoredEvent) {
        (
            path.to_owned(),
            StoredEvent {
                seq,
                ticket_id: TicketId::parse(ticket).unwrap(),
                event: Event {
                    at: Utc::now(),
                    actor: Actor::new("console"),
                    change: Change::Urged {
                        reason: "please".into(),
                    },
                    status_after: Status::Dispatched,
                },
            },
        )
    }

    fn event(seq: i64, ticket: &str, path: &str) -> (String, Arc<StoredEvent>) {
        let (path, event) = stored(seq, ticket, path);
        (path, Arc::new(event))
    }

    fn seqs(events: &[Arc<StoredEvent>]) -> Vec<i64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_watch_keeps_its_subtree_after_its_position() {
        let events = [
            event(3, "a", "|lx|lx/s1|"),
            event(4, "b", "|lx|lx/s2|"),
            event(6, "c", "|lx|lx/s1|lx/s1/c1|"),
            event(7, "d", "|lx|lx/s10|"),
            event(9, "a", "|lx|lx/s1|"),
        ];
        assert_eq!(seqs(&select(&events, 0, None, None)), [3, 4, 6, 7, 9]);
        assert_eq!(seqs(&select(&events, 4, None, None)), [6, 7, 9]);
        assert_eq!(
            seqs(&select(&events, 0, Some("|lx|lx/s1|"), None)),
            [3, 6, 9],
            "a sibling whose code starts alike is not in the subtree"
        );
        assert_eq!(seqs(&select(&events, 6, Some("|lx|lx/s1|"), None)), [9]);
        assert_eq!(
            seqs(&select(&events, 0, Some("|lx|lx/s1|lx/s1/c1|"), None)),
            [6]
        );
        assert!(select(&events, 0, Some("|lx|lx/s3|"), None).is_empty());
    }

    #[test]
    fn a_handling_unit_sees_only_the_tickets_marked_visible() {
        let events = [
            event(3, "a", "|lx|lx/s1|"),
            event(4, "b", "|lx|lx/s1|"),
            event(5, "c", "|lx|lx/s2|"),
            event(6, "a", "|lx|lx/s1|"),
        ];
        let handled = HashMap::from([
            (TicketId::parse("a").unwrap(), true),
            (TicketId::parse("b").unwrap(), false),
            (TicketId::parse("c").unwrap(), true),
        ]);
        assert_eq!(seqs(&select(&events, 0, None, Some(&handled))), [3, 5, 6]);
        assert_eq!(
            seqs(&select(&events, 0, Some("|lx|lx/s1|"), Some(&handled))),
            [3, 6]
        );
        assert!(
            select(&events, 0, None, Some(&HashMap::new())).is_empty(),
            "a ticket not looked up (gone) is not shown"
        );
    }

    #[test]
    fn a_reader_starting_late_skips_to_the_end_of_the_log_without_ending_a_watch() {
        let feed = Feed::new(10);
        feed.skip_to(40);
        assert!(
            feed.after(10).is_none(),
            "a watch at 10 catches up from the store"
        );
        assert!(!feed.dropped_past(10), "and is not ended for it");
        assert_eq!(feed.after(40).map(|b| b.len()), Some(0));
        feed.push(vec![stored(41, "a", "|lx|")]);
        feed.skip_to(50);
        assert_eq!(
            feed.after(40).map(|b| b.len()),
            Some(1),
            "only an empty feed skips"
        );
    }

    #[test]
    fn the_feed_keeps_contiguous_batches_and_drops_the_oldest() {
        let feed = Feed::new(10);
        assert_eq!(feed.after(10).map(|b| b.len()), Some(0));
        assert!(
            feed.after(9).is_none(),
            "before the feed started: the store"
        );
        let many = |from: i64, n: i64| {
            (from..from + n)
                .map(|seq| stored(seq, "a", "|lx|"))
                .collect::<Vec<_>>()
        };
        feed.push(many(11, 2));
        feed.push(many(13, 3));
        let batches = feed.after(12).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].last, 15);
        let straddling = feed.after(11).unwrap();
        assert_eq!(straddling.len(), 2, "the batch holding 12 comes too");
        assert_eq!(seqs(&select(&straddling[0].events, 11, None, None)), [12]);
        assert!(!feed.dropped_past(11));
        feed.push(many(16, FEED_HOLDS as i64));
        assert!(feed.after(12).is_none(), "dropped: a watch there is behind");
        assert!(feed.dropped_past(12));
        assert!(!feed.dropped_past(15));
        assert_eq!(feed.after(15).map(|b| b.len()), Some(1));
        assert_eq!(*feed.heads.borrow(), 15 + FEED_HOLDS as i64);
    }
}
