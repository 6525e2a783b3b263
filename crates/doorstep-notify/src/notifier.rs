//! The notifier: records deliveries behind the event log, and attempts them until they are done.
//!
//! Recording is a projector with its own cursor (`delivery_state`): it reads the events after the
//! cursor, matches them against the rules, and writes the deliveries and the new cursor in one
//! transaction, only if the cursor did not move meanwhile. A crash before that commit leaves the
//! events to be read again; after it, the deliveries are in the database. So none is lost, and two
//! notifiers never record one twice.
//!
//! Delivering claims due deliveries under a lease (one process at a time; per rule and ticket, in
//! event order), sends each on a task of its own (at most [`NotifierConfig::concurrency`] at once,
//! every request under [`NotifierConfig::timeout`]), and settles it: a 2xx answer is done; anything
//! else is tried again after an exponential backoff with jitter, and set aside as failed once
//! [`NotifierConfig::give_up`] has passed since it was recorded. The notifier runs on its own task
//! and touches nothing but its two tables, so a slow or dead receiver never holds up escalation or
//! intake.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use doorstep_domain::{Ticket, TicketId};
use doorstep_engine::Engine;
use doorstep_store::{Delivery, NewDelivery, Settlement, Store, StoreError, StoredEvent};
use sha2::Digest as _;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::http::{self, Request};
use crate::render;
use crate::rules::Rules;

/// Ticket histories read at once while recording.
const HISTORIES_AT_ONCE: usize = 16;

/// Attempts by outcome (`done`, `retry`, `failed`) and rule.
pub const ATTEMPTS: &str = "doorstep_notify_attempts_total";
/// Deliveries not done yet.
pub const PENDING: &str = "doorstep_notify_pending";
/// Deliveries set aside as failed.
pub const FAILED: &str = "doorstep_notify_failed";
/// Age of the oldest pending delivery, in seconds (0: none pending).
pub const LAG: &str = "doorstep_notify_lag_seconds";
/// Events committed that the notifier has not considered yet.
pub const EVENTS_BEHIND: &str = "doorstep_notify_events_behind";

/// How a notifier records, claims and retries.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// This notifier's name in leases (unique per process).
    pub owner: String,
    /// Events considered per recording transaction.
    pub record_step: u32,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// How long a claimed delivery stays reserved: if this process dies mid-attempt, another
    /// takes it over after this. Longer than `timeout`.
    pub lease: Duration,
    /// The whole of one attempt: connecting, sending, the answer.
    pub timeout: Duration,
    /// The longest sleep: how late deliveries recorded by other processes are seen.
    pub poll: Duration,
    /// The delay before the first retry; it doubles with every failure (with jitter: between half
    /// and all of it).
    pub first_retry: Duration,
    /// The longest delay between two attempts.
    pub max_backoff: Duration,
    /// A delivery still failing this long after it was recorded is set aside as failed; events
    /// older than this when first considered are not notified.
    pub give_up: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            owner: format!("notify-{}", std::process::id()),
            record_step: 500,
            concurrency: 32,
            lease: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            first_retry: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            give_up: Duration::from_secs(24 * 3600),
        }
    }
}

/// The notifier over one engine and its store.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    rules: Rules,
    config: NotifierConfig,
    tls: Arc<rustls::ClientConfig>,
    in_flight: Arc<Semaphore>,
    /// Attempts' outcomes, to the settler, which records them a transaction per batch.
    outcomes: mpsc::UnboundedSender<Settled>,
    /// A batch of attempts settled: a delivery they held back may be due.
    settled: Arc<Notify>,
}

/// An attempt's outcome on its way to the database; its slot is free once recorded.
#[derive(Debug)]
struct Settled {
    id: String,
    outcome: Settlement,
    _slot: OwnedSemaphorePermit,
}

/// Records outcomes as they come, many per transaction (one write instead of one per attempt when
/// a burst is being delivered), then frees their slots and wakes the notifier.
async fn settle(
    store: Arc<dyn Store>,
    owner: String,
    mut outcomes: mpsc::UnboundedReceiver<Settled>,
    settled: Arc<Notify>,
) {
    let mut batch = Vec::new();
    while outcomes.recv_many(&mut batch, 500).await > 0 {
        let rows: Vec<(String, Settlement)> = batch
            .iter()
            .map(|s| (s.id.clone(), s.outcome.clone()))
            .collect();
        if let Err(e) = store.settle_deliveries(&owner, &rows).await {
            // Their leases run out and they are attempted again.
            tracing::warn!(error = %e, attempts = rows.len(), "cannot record notification attempts");
        }
        batch.clear();
        settled.notify_one();
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Notifier {
    /// A notifier for `rules`; checks what needs the district (every rule's node is in it).
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        rules: Rules,
        config: NotifierConfig,
    ) -> Result<Notifier, crate::RuleError> {
        rules.check_nodes(&engine.district())?;
        let concurrency = config.concurrency.max(1);
        let (outcomes, queue) = mpsc::unbounded_channel();
        let settled = Arc::new(Notify::new());
        tokio::spawn(settle(
            Arc::clone(&store),
            config.owner.clone(),
            queue,
            Arc::clone(&settled),
        ));
        Ok(Notifier {
            inner: Arc::new(Inner {
                engine,
                store,
                rules,
                config,
                tls: http::tls_config(),
                in_flight: Arc::new(Semaphore::new(concurrency)),
                outcomes,
                settled,
            }),
        })
    }

    /// Records the deliveries of up to [`NotifierConfig::record_step`] more events; the number of
    /// events considered (0: caught up).
    #[tracing::instrument(name = "notify.record", level = "debug", skip_all)]
    pub async fn record(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let store = &inner.store;
        let cursor = store.delivery_cursor().await?;
        let events = store
            .events_with_paths_after(cursor, inner.config.record_step)
            .await?;
        let Some((_, last)) = events.last() else {
            return Ok(0);
        };
        let upto = last.seq;
        let now = inner.engine.now();
        let oldest = now - chrono(inner.config.give_up);
        let wanted = |kind: &str| {
            inner
                .rules
                .webhooks
                .iter()
                .any(|w| w.filter.events.contains(kind))
                || inner
                    .rules
                    .sms
                    .iter()
                    .any(|s| s.filter.events.contains(kind))
        };
        let candidates: Vec<&StoredEvent> = events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.event.at >= oldest && wanted(e.event.change.kind()))
            .collect();
        let mut new = Vec::new();
        if !candidates.is_empty() {
            let tickets = self.tickets_at(&candidates).await?;
            let district = inner.engine.district();
            let tz = match inner.engine.policy(0).await {
                Ok(policy) => policy.time_zone,
                Err(_) => chrono_tz::Asia::Shanghai,
            };
            let expires_at = now + chrono(inner.config.give_up);
            for e in candidates {
                let Some(ticket) = tickets.get(&e.seq) else {
                    continue;
                };
                let kind = e.event.change.kind();
                let level = ticket.level;
                let delivery = |id: String, rule: &str, channel: &str, body: String| NewDelivery {
                    id,
                    rule: rule.to_owned(),
                    channel: channel.to_owned(),
                    ticket_id: e.ticket_id.as_str().to_owned(),
                    seq: e.seq,
                    kind: kind.to_owned(),
                    body,
                    created_at: now,
                    expires_at,
                };
                for w in &inner.rules.webhooks {
                    if w.filter.matches(kind, ticket, level, &district) {
                        let id = format!("{}-{}", e.seq, w.name);
                        let body = render::webhook_body(&id, &w.name, e, ticket);
                        new.push(delivery(id, &w.name, "webhook", body));
                    }
                }
                for s in &inner.rules.sms {
                    if !s.filter.matches(kind, ticket, level, &district) {
                        continue;
                    }
                    let Some(text) = render::sms_text(s, kind, ticket, tz) else {
                        continue;
                    };
                    for (i, person) in render::recipients(s, ticket, &district).iter().enumerate() {
                        let id = format!("{}-{}-{}", e.seq, s.name, i + 1);
                        let body = render::sms_request(s, &person.phone, &text);
                        new.push(delivery(id, &s.name, "sms", body));
                    }
                }
            }
        }
        let recorded = new.len();
        if store.record_deliveries(cursor, upto, &new).await? && recorded > 0 {
            tracing::debug!(deliveries = recorded, upto, "notifications recorded");
        }
        Ok(events.len())
    }

    /// Each event's ticket just after it (its history replayed up to the event): what the body
    /// shows and what the rule's `levels` and recipients judge by, the same whenever and by whichever
    /// process it is recorded. Keyed by seq.
    async fn tickets_at(
        &self,
        events: &[&StoredEvent],
    ) -> Result<HashMap<i64, Ticket>, StoreError> {
        let mut wanted: HashMap<&TicketId, Vec<i64>> = HashMap::new();
        for e in events {
            wanted.entry(&e.ticket_id).or_default().push(e.seq);
        }
        let ids: Vec<TicketId> = wanted.keys().map(|id| (*id).clone()).collect();
        let mut out = HashMap::with_capacity(events.len());
        // A few histories read at once.
        for chunk in ids.chunks(HISTORIES_AT_ONCE) {
            let mut reads = tokio::task::JoinSet::new();
            for id in chunk {
                let (store, id) = (Arc::clone(&self.inner.store), id.clone());
                reads.spawn(async move { store.history(&id).await });
            }
            while let Some(read) = reads.join_next().await {
                let history = read.map_err(|e| StoreError::Database(e.to_string()))??;
                let Some((first, rest)) = history.split_first() else {
                    continue;
                };
                let Ok(mut ticket) = Ticket::from_created(&first.event) else {
                    continue;
                };
                let seqs = &wanted[&first.ticket_id];
                let last = seqs.iter().copied().max().unwrap_or(0);
                if seqs.contains(&first.seq) {
                    out.insert(first.seq, ticket.clone());
                }
                for e in rest {
                    if e.seq > last {
                        break;
                    }
                    ticket.apply(&e.event);
                    if seqs.contains(&e.seq) {
                        out.insert(e.seq, ticket.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Claims the deliveries due now (as many as there are free attempt slots) and starts an
    /// attempt for each; the number claimed.
    #[tracing::instrument(name = "notify.deliver", level = "debug", skip_all)]
    pub async fn deliver(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let free = inner.in_flight.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = inner.engine.now();
        let claimed = inner
            .store
            .claim_deliveries(
                now,
                u32::try_from(free).unwrap_or(u32::MAX),
                &inner.config.owner,
                now + chrono(inner.config.lease),
            )
            .await?;
        let n = claimed.len();
        for delivery in claimed {
            let Ok(permit) = Arc::clone(&inner.in_flight).acquire_owned().await else {
                break;
            };
            let inner = Arc::clone(inner);
            tokio::spawn(async move { inner.attempt(delivery, permit).await });
        }
        Ok(n)
    }

    /// Waits until every attempt started has settled (its outcome recorded).
    pub async fn idle(&self) {
        let n = u32::try_from(self.inner.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let _ = self.inner.in_flight.acquire_many(n).await;
    }

    /// Samples the gauges.
    pub async fn sample_gauges(&self) -> Result<(), StoreError> {
        let counts = self.inner.store.delivery_counts().await?;
        let lag = counts.oldest_pending.map_or(0.0, |oldest| {
            (self.inner.engine.now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!(PENDING).set(counts.pending as f64);
        metrics::gauge!(FAILED).set(counts.failed as f64);
        metrics::gauge!(LAG).set(lag);
        metrics::gauge!(EVENTS_BEHIND).set(counts.events_behind as f64);
        Ok(())
    }

    /// How long until the next delivery falls due, at most the poll.
    async fn until_next_due(&self) -> Duration {
        let inner = &self.inner;
        match inner.store.next_delivery_due().await {
            Ok(Some(due)) if due > inner.engine.now() => (due - inner.engine.now())
                .to_std()
                .unwrap_or_default()
                .min(inner.config.poll),
            _ => inner.config.poll,
        }
    }

    /// Records and delivers until `shutdown`, then lets the attempts in flight finish.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let inner = Arc::clone(&self.inner);
        tracing::info!(
            webhooks = inner.rules.webhooks.len(),
            sms = inner.rules.sms.len(),
            "notifier started"
        );
        let mut commits = inner.engine.subscribe();
        let mut sampled: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // One step at a time, delivering between steps: a burst's first notifications go
            // out while the rest are still being recorded.
            let recorded = match self.record().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record notifications");
                    0
                }
            };
            let claimed = match self.deliver().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim notifications");
                    0
                }
            };
            if sampled.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                sampled = Some(tokio::time::Instant::now());
                if let Err(e) = self.sample_gauges().await {
                    tracing::debug!(error = %e, "cannot sample notification gauges");
                }
            }
            if recorded >= inner.config.record_step as usize
                || (claimed > 0 && inner.in_flight.available_permits() > 0)
            {
                continue;
            }
            let wait = if inner.in_flight.available_permits() == 0 {
                // Every slot busy: a settled batch wakes the loop.
                inner.config.poll
            } else {
                self.until_next_due().await
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = commits.changed() => {}
                () = inner.settled.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        self.idle().await;
        tracing::info!("notifier stopped");
    }
}

impl Inner {
    /// One attempt at `d`, handed to the settler with its slot.
    async fn attempt(&self, d: Delivery, slot: OwnedSemaphorePermit) {
        let answer = match self.request(&d) {
            Ok(request) => http::send(request, &self.tls, self.config.timeout)
                .await
                .map_err(|f| f.0),
            Err(reason) => Err(reason),
        };
        let now = self.engine.now();
        let attempts = d.attempts + 1;
        let outcome = match answer {
            Ok(status) if (200..300).contains(&status) => Settlement::Done { at: now },
            other => {
                let error = match other {
                    Ok(status) => format!("HTTP {status}"),
                    Err(reason) => reason,
                };
                if now >= d.expires_at {
                    Settlement::Failed { at: now, error }
                } else {
                    let next_at = (now + chrono(self.backoff(&d.id, attempts))).min(d.expires_at);
                    Settlement::Retry { next_at, error }
                }
            }
        };
        let word = match &outcome {
            Settlement::Done { .. } => "done",
            Settlement::Retry { .. } => "retry",
            Settlement::Failed { .. } => "failed",
        };
        metrics::counter!(ATTEMPTS, "outcome" => word, "rule" => d.rule.clone()).increment(1);
        match &outcome {
            Settlement::Done { .. } => tracing::debug!(
                delivery = %d.id, rule = %d.rule, seq = d.seq, attempts, "notification delivered"
            ),
            Settlement::Retry { next_at, error } => tracing::warn!(
                delivery = %d.id, rule = %d.rule, seq = d.seq, attempts, error = %error,
                next_at = %next_at, "notification not delivered: will retry"
            ),
            Settlement::Failed { error, .. } => tracing::error!(
                delivery = %d.id, rule = %d.rule, seq = d.seq, attempts, error = %error,
                "notification not delivered: given up (doorstep notify retry ID tries again)"
            ),
        }
        let _ = self.outcomes.send(Settled {
            id: d.id,
            outcome,
            _slot: slot,
        });
    }

    /// The request of one attempt.
    fn request(&self, d: &Delivery) -> Result<Request, String> {
        match d.channel.as_str() {
            "webhook" => {
                let w = self
                    .rules
                    .webhooks
                    .iter()
                    .find(|w| w.name == d.rule)
                    .ok_or_else(|| {
                        format!("no webhook rule {} in this process's config", d.rule)
                    })?;
                let t = self.engine.now().timestamp();
                let signature = render::signature(&w.secret, t, d.body.as_bytes());
                Ok(Request {
                    method: ::http::Method::POST,
                    uri: w.target.uri.clone(),
                    headers: vec![
                        (
                            ::http::header::CONTENT_TYPE,
                            ::http::HeaderValue::from_static("application/json"),
                        ),
                        (
                            ::http::HeaderName::from_static("doorstep-delivery"),
                            ::http::HeaderValue::from_str(&d.id)
                                .map_err(|_| "delivery id is not a header value".to_owned())?,
                        ),
                        (
                            ::http::HeaderName::from_static("doorstep-signature"),
                            ::http::HeaderValue::from_str(&signature)
                                .map_err(|_| "signature is not a header value".to_owned())?,
                        ),
                    ],
                    body: d.body.clone().into(),
                })
            }
            "sms" => {
                let s = self
                    .rules
                    .sms
                    .iter()
                    .find(|s| s.name == d.rule)
                    .ok_or_else(|| format!("no sms rule {} in this process's config", d.rule))?;
                let stored: serde_json::Value = serde_json::from_str(&d.body)
                    .map_err(|_| "the stored gateway request is not JSON".to_owned())?;
                let url = stored["url"].as_str().unwrap_or_default();
                let body = stored["body"].as_str().unwrap_or_default();
                let uri: ::http::Uri = url
                    .parse()
                    .map_err(|_| "the gateway URL is not a URL".to_owned())?;
                let mut headers = s.headers.clone();
                headers.push((
                    ::http::HeaderName::from_static("doorstep-delivery"),
                    ::http::HeaderValue::from_str(&d.id)
                        .map_err(|_| "delivery id is not a header value".to_owned())?,
                ));
                Ok(Request {
                    method: s.method.clone(),
                    uri,
                    headers,
                    body: body.to_owned().into(),
                })
            }
            other => Err(format!("unknown channel {other}")),
        }
    }

    /// The delay before attempt `attempts + 1`: `first_retry` doubled per failure, capped, times a
    /// jitter between 0.5 and 1 drawn from the delivery id and the attempt (so processes retrying
    /// many deliveries at once spread out).
    fn backoff(&self, id: &str, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let base = self
            .config
            .first_retry
            .saturating_mul(1u32 << doublings)
            .min(self.config.max_backoff);
        let digest = sha2::Sha256::digest(format!("{id}/{attempts}").as_bytes());
        let draw = u16::from_be_bytes([digest[0], digest[1]]);
        let jitter = 0.5 + f64::from(draw) / f64::from(u16::MAX) / 2.0;
        base.mul_f64(jitter)
    }
}
