//! The gauges an operator watches, sampled from the store by a small task
//! ([`Engine::sample_gauges`]): the due timers, open tickets per level, the reporting rows' lag, the
//! database pool. Cheap counts on a timer rather than on every scrape, so a scraper cannot load the
//! database.

use std::sync::Arc;
use std::time::Duration;

use doorstep_domain::Level;
use tokio::sync::watch;

use super::Engine;
use crate::observe::{DB_POOL, DUE_TIMERS, PROJECTOR_LAG, TICKETS_OPEN};

/// How often the due timers, the projector's lag and the pool are sampled.
const EVERY: Duration = Duration::from_secs(5);
/// Open tickets are counted every this many samples (a grouped count over the tickets' status index).
const OPEN_EVERY: u32 = 3;

impl Engine {
    /// Samples the gauges until `shutdown` turns true (spawned by a process that serves metrics).
    pub async fn sample_gauges(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut round = 0u32;
        loop {
            self.sample(round.is_multiple_of(OPEN_EVERY)).await;
            round = round.wrapping_add(1);
            if tokio::time::timeout(EVERY, shutdown.wait_for(|stop| *stop))
                .await
                .is_ok()
            {
                return;
            }
        }
    }

    async fn sample(&self, open_tickets: bool) {
        let pool = self.store.pool_use();
        let idle = pool.idle.min(pool.size);
        metrics::gauge!(DB_POOL, "state" => "idle").set(f64::from(idle));
        metrics::gauge!(DB_POOL, "state" => "busy").set(f64::from(pool.size - idle));
        match self.store.count_due_timers(self.now()).await {
            Ok(due) => metrics::gauge!(DUE_TIMERS).set(due as f64),
            Err(e) => tracing::debug!(error = %e, "cannot count the due timers"),
        }
        match self.store.reports_behind().await {
            Ok(behind) => metrics::gauge!(PROJECTOR_LAG).set(behind as f64),
            Err(e) => tracing::debug!(error = %e, "cannot read the reporting rows' lag"),
        }
        if !open_tickets {
            return;
        }
        match self.store.open_tickets_by_level().await {
            Ok(counts) => {
                for level in Level::ALL {
                    let open = counts
                        .iter()
                        .find(|(name, _)| name == level.as_str())
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!(TICKETS_OPEN, "level" => level.as_str()).set(open as f64);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot count the open tickets"),
        }
    }
}
