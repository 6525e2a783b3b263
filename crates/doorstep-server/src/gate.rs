//! The gate every call passes first: authentication (the bearer token read from the call's
//! metadata, checked by the engine's [`Authenticator`]), the principal's rate limit, and the role × RPC
//! table ([`doorstep_engine::authorize`]), in that order and in this one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use doorstep_engine::{Authenticator, Error, Principal, Rpc, authorize};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::error::to_status;

/// A token bucket per principal: `per_second` calls a second on average, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

/// Principals tracked at most; idle buckets (full again) are dropped beyond it.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug)]
struct Buckets {
    limit: RateLimit,
    /// Principal key → (tokens left, last refill).
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    /// The bucket has at least one call left (taking nothing).
    fn has_room(&self, key: &str) -> bool {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.get(key).is_none_or(|(left, at)| {
            *left + at.elapsed().as_secs_f64() * self.limit.per_second >= 1.0
        })
    }

    fn take(&self, key: &str) -> bool {
        self.take_n(key, 1.0)
    }

    /// Takes `n` calls' worth from the bucket, or nothing when it has fewer left.
    fn take_n(&self, key: &str, n: f64) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let limit = self.limit;
            buckets.retain(|_, (left, at)| {
                *left + now.duration_since(*at).as_secs_f64() * limit.per_second < limit.burst
            });
        }
        let (left, at) = buckets
            .entry(key.to_owned())
            .or_insert((self.limit.burst, now));
        *left = (*left + now.duration_since(*at).as_secs_f64() * self.limit.per_second)
            .min(self.limit.burst);
        *at = now;
        if *left >= n {
            *left -= n;
            true
        } else {
            false
        }
    }
}

/// Authentication, rate limiting and authorization for every service.
#[derive(Debug)]
pub struct Gate {
    auth: Arc<dyn Authenticator>,
    buckets: Buckets,
}

impl Gate {
    pub fn new(auth: Arc<dyn Authenticator>, limit: RateLimit) -> Self {
        Gate {
            auth,
            buckets: Buckets {
                limit,
                buckets: Mutex::new(HashMap::new()),
            },
        }
    }

    /// The principal of a call to `rpc`, or the status that refuses it.
    pub async fn admit<T>(&self, request: &Request<T>, rpc: Rpc) -> Result<Principal, Status> {
        // Failed authentications count against the caller's address, so that a flood of bad tokens
        // (each one a store lookup) is throttled like any other call. Over the allowance, only a token
        // already found valid gets through: the clients behind a shared address are not locked out.
        let peer = request.remote_addr().map(|a| a.ip());
        let bucket = peer.map(|ip| format!("peer {ip}"));
        if let Some(bucket) = &bucket
            && !self.buckets.has_room(bucket)
        {
            let token = match self.auth.requires_token() {
                true => bearer(request.metadata()).ok().flatten(),
                false => None,
            };
            if !self.auth.known(token) {
                return Err(to_status(Error::RateLimited(
                    "too many failed authentications from this address; retry later".into(),
                )));
            }
        }
        let principal = match self.authenticate(request.metadata()).await {
            Ok(principal) => principal,
            Err(e) => {
                // Only a refused credential is a failed authentication: a lookup the database could
                // not answer is the service's failure, and the client retrying it is no guesser.
                if let Some(bucket) = &bucket
                    && e.kind() == doorstep_engine::ErrorKind::Unauthenticated
                    && self.buckets.take(bucket)
                {
                    // Logged while the address has allowance left: a flood logs its first burst.
                    tracing::warn!(
                        peer = %peer.map(|ip| ip.to_string()).unwrap_or_default(),
                        rpc = %rpc.name(),
                        reason = %e,
                        "authentication failed"
                    );
                }
                return Err(to_status(e));
            }
        };
        crate::observe::note_principal(&principal.name);
        // The local principal of an unauthenticated loopback service is its operator: not limited.
        if let Some(token) = &principal.token
            && !self.buckets.take(&token.id)
        {
            tracing::warn!(token = %token.id, rpc = %rpc.name(), "rate limit exceeded");
            return Err(to_status(Error::RateLimited(format!(
                "rate limit of {} calls a second exceeded; slow down and retry",
                self.buckets.limit.per_second
            ))));
        }
        authorize(&principal, rpc).map_err(to_status)?;
        Ok(principal)
    }

    /// Charges an expensive call beyond the one unit [`Gate::admit`] took: `cost` units in all (for
    /// a report one per period step, for a list one per hundred rows). A cost above the burst could
    /// never be paid, so it is refused INVALID_ARGUMENT naming `field`, the one to narrow, with
    /// `narrow` saying how; a cost above what is left now is RESOURCE_EXHAUSTED. The local principal
    /// of an unauthenticated loopback service is not limited.
    pub fn charge(
        &self,
        principal: &Principal,
        rpc: Rpc,
        cost: u32,
        field: &str,
        narrow: &str,
    ) -> Result<(), Status> {
        let Some(token) = &principal.token else {
            return Ok(());
        };
        let cost = f64::from(cost);
        if cost > self.buckets.limit.burst {
            return Err(to_status(Error::invalid(
                field,
                format!(
                    "this {} would cost {cost} calls of the rate limit, more than a token may \
                     spend at once ({}); {narrow}",
                    rpc.name(),
                    self.buckets.limit.burst
                ),
            )));
        }
        if cost > 1.0 && !self.buckets.take_n(&token.id, cost - 1.0) {
            tracing::warn!(token = %token.id, rpc = %rpc.name(), cost, "rate limit exceeded");
            return Err(to_status(Error::RateLimited(format!(
                "this {} costs {cost} calls of the rate limit ({} calls a second); retry later, \
                 or narrow {field}: {narrow}",
                rpc.name(),
                self.buckets.limit.per_second
            ))));
        }
        Ok(())
    }

    /// The caller, from the bearer token the call carries (read only when the authenticator needs one).
    async fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Error> {
        let token = match self.auth.requires_token() {
            true => bearer(metadata)?,
            false => None,
        };
        self.auth.authenticate(token).await
    }

    /// Checks that a streaming principal's token still holds.
    pub async fn recheck(&self, principal: &Principal) -> Result<(), Error> {
        self.auth.recheck(principal).await
    }
}

/// The secret of the call's `authorization: Bearer TOKEN` header; `None` without the header.
fn bearer(metadata: &MetadataMap) -> Result<Option<&str>, Error> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::Unauthenticated("authorization is not ASCII".into()))?;
    text.strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Some)
        .ok_or_else(|| Error::Unauthenticated("authorization must be `Bearer TOKEN`".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_from_the_authorization_header() {
        let mut metadata = MetadataMap::new();
        assert_eq!(bearer(&metadata).unwrap(), None);
        metadata.insert("authorization", "Bearer  dst_abc ".parse().unwrap());
        assert_eq!(bearer(&metadata).unwrap(), Some("dst_abc"));
        for malformed in ["Basic dst_abc", "Bearer ", "dst_abc"] {
            metadata.insert("authorization", malformed.parse().unwrap());
            let e = bearer(&metadata).unwrap_err();
            assert_eq!(
                e.to_string(),
                "authorization must be `Bearer TOKEN`",
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills() {
        // A call back every half second: the four takes below need not come within a millisecond of
        // each other (a loaded machine may pause the test that long), only within half a second.
        let b = Buckets {
            limit: RateLimit {
                per_second: 2.0,
                burst: 3.0,
            },
            buckets: Mutex::new(HashMap::new()),
        };
        assert!(b.take("a") && b.take("a") && b.take("a"));
        assert!(!b.take("a"));
        assert!(b.take("b"), "buckets are per principal");
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(b.take("a"), "refilled");
    }
}
