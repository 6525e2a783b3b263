//! The district, calendar and policy every process serves, kept as the database holds them.
//!
//! Each process keeps one copy in memory ([`Shared`]) and the configuration version it was loaded at.
//! A change made through any process (an admin call, a CLI command, another replica) moves the version
//! in the change's own transaction; every process reads the version every [`CONFIG_POLL`] and loads
//! the three again when it moved. A process's own change reloads at once. Policy versions never
//! change once stored, so the ones already parsed stay cached; any version is loaded on demand.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use doorstep_domain::calendar::Calendar;
use doorstep_domain::{District, Policy};
use doorstep_store::Store;

use super::Engine;
use crate::error::Error;

/// How often every process checks whether the configuration changed: a change is in use everywhere
/// within this long plus one reload.
pub const CONFIG_POLL: Duration = Duration::from_secs(1);

/// What the engine holds in memory, replaced whole when the configuration version moves.
#[derive(Debug)]
pub(super) struct Shared {
    /// The configuration version the district, calendar and current policy were read at.
    pub(super) version: i64,
    pub(super) district: Arc<District>,
    pub(super) calendar: Arc<Calendar>,
    pub(super) current_policy: i64,
    pub(super) policies: BTreeMap<i64, Arc<Policy>>,
}

impl Shared {
    /// Reads the configuration as the store holds it now. The version is read first, so a change
    /// committed while the rest is read leaves the copy at an older version and is loaded again.
    pub(super) async fn load(
        store: &dyn Store,
        cached: &BTreeMap<i64, Arc<Policy>>,
    ) -> Result<Shared, Error> {
        let version = store.config_version().await?;
        let stored = store
            .policy(0)
            .await?
            .ok_or_else(|| Error::Internal("the database holds no policy".into()))?;
        let mut policies = cached.clone();
        if let std::collections::btree_map::Entry::Vacant(entry) = policies.entry(stored.version) {
            let parsed = Policy::from_toml(&stored.toml)
                .map_err(|e| Error::Internal(format!("stored policy {}: {e}", stored.version)))?;
            entry.insert(Arc::new(parsed));
        }
        Ok(Shared {
            version,
            district: Arc::new(store.load_district().await?),
            calendar: Arc::new(store.load_calendar().await?),
            current_policy: stored.version,
            policies,
        })
    }

    /// The same configuration with one more policy version parsed.
    pub(super) fn with_policy(&self, version: i64, policy: Arc<Policy>) -> Shared {
        let mut policies = self.policies.clone();
        policies.insert(version, policy);
        Shared {
            version: self.version,
            district: Arc::clone(&self.district),
            calendar: Arc::clone(&self.calendar),
            current_policy: self.current_policy,
            policies,
        }
    }
}

/// What a reload changed, for the one log line an operator sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    pub version: i64,
    pub district: bool,
    pub calendar: bool,
    /// The current policy version, when it changed.
    pub policy: Option<i64>,
}

impl Engine {
    /// Loads the configuration again if the store's version moved since this process loaded it.
    /// `None` when it had not moved. Reloads run one at a time, and a copy never replaces a newer one.
    pub async fn reload_config(&self) -> Result<Option<Reloaded>, Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let held = self.shared();
        if self.store.config_version().await? == held.version {
            return Ok(None);
        }
        let next = Shared::load(self.store.as_ref(), &held.policies).await?;
        let reloaded = Reloaded {
            version: next.version,
            district: next.district != held.district,
            calendar: next.calendar != held.calendar,
            policy: (next.current_policy != held.current_policy).then_some(next.current_policy),
        };
        {
            let mut held = self.shared.write().unwrap_or_else(|e| e.into_inner());
            // Reloads take turns, so this holds; a copy must never replace a newer one.
            if next.version < held.version {
                return Ok(None);
            }
            *held = Arc::new(next);
        }
        if reloaded.district {
            // A node may have moved, and its tickets' events with it.
            self.feed.forget();
        }
        if reloaded.calendar || reloaded.district || reloaded.policy.is_some() {
            // Anything armed from now on may be due sooner: let the scheduler look again.
            self.timers_changed.notify_one();
        }
        Ok(Some(reloaded))
    }

    /// Keeps this process's configuration as the database holds it: checks the version every
    /// [`CONFIG_POLL`] and reloads when it moved, logging what changed. Spawned once by every
    /// long-running process (`serve`, `doorstep sla`); ends when `stop` turns true.
    pub fn config_follower(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let engine = Arc::clone(self);
        async move {
            let mut failing = false;
            loop {
                // Ends on stop, or when every sender is gone.
                if tokio::time::timeout(CONFIG_POLL, stop.wait_for(|stop| *stop))
                    .await
                    .is_ok()
                {
                    break;
                }
                match engine.reload_config().await {
                    Ok(Some(r)) => {
                        failing = false;
                        if r.district || r.calendar || r.policy.is_some() {
                            tracing::info!(
                                config_version = r.version,
                                district_changed = r.district,
                                calendar_changed = r.calendar,
                                policy_version = engine.shared().current_policy,
                                "configuration reloaded from the database"
                            );
                        } else {
                            tracing::debug!(config_version = r.version, "configuration unchanged");
                        }
                    }
                    Ok(None) => failing = false,
                    Err(e) => {
                        // Logged once per outage, not every second; the old copy stays in use.
                        if !failing {
                            tracing::warn!(error = %e, "cannot check the configuration version; serving the copy loaded before");
                        }
                        failing = true;
                    }
                }
            }
        }
    }
}
