//! Authentication: every request resolves to a [`Principal`] with a role and a jurisdiction scope.
//! [`LocalAllAccess`] is the loopback default (everyone is the local admin); [`TokenAuthenticator`]
//! checks the caller's bearer token against the stored token hashes. Reading the token out of a
//! request is the server's; what a principal may call is `access`; which tickets it reaches is checked
//! by the engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use doorstep_domain::{NodeCode, UnitCode};
use doorstep_store::TokenRecord;

use crate::access::Role;
use crate::engine::Engine;
use crate::error::Error;
use crate::tokens;

/// The token a principal authenticated with (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub id: String,
    /// SHA-256 of the secret, the key it is looked up by.
    pub hash: String,
}

/// Who is calling, and how far they reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Recorded as the actor of every event the principal causes.
    pub name: String,
    pub role: Role,
    /// The subtree the principal reaches; `None` = the whole district.
    pub scope: Option<NodeCode>,
    /// The node path of `scope` (see `Jurisdiction::node_path`), resolved once.
    pub scope_path: Option<String>,
    /// For a handling unit: the unit it speaks for.
    pub unit: Option<UnitCode>,
    /// `None` for the local all-access principal.
    pub token: Option<TokenRef>,
}

impl Principal {
    /// The local all-access principal of an unauthenticated loopback service.
    pub fn local() -> Self {
        Principal {
            name: "local".into(),
            role: Role::Admin,
            scope: None,
            scope_path: None,
            unit: None,
            token: None,
        }
    }

    /// The principal's subtree includes `node_path`.
    pub fn reaches(&self, node_path: &str) -> bool {
        self.scope_path
            .as_deref()
            .is_none_or(|scope| node_path.starts_with(scope))
    }

    /// Reaches every ticket of the district (a district-wide admin, dispatcher or supervisor): for it,
    /// a ticket it cannot find does not exist.
    pub fn reaches_everything(&self) -> bool {
        self.scope_path.is_none() && !matches!(self.role, Role::Unit | Role::Intake)
    }

    /// Narrows a requested subtree to the principal's scope. `Ok(None)` = everywhere.
    pub fn narrow(&self, requested: Option<String>) -> Result<Option<String>, Error> {
        match (requested, &self.scope_path) {
            (None, scope) => Ok(scope.clone()),
            (Some(path), None) => Ok(Some(path)),
            (Some(path), Some(scope)) if path.starts_with(scope.as_str()) => Ok(Some(path)),
            // A request for a wider subtree is answered within the scope only.
            (Some(path), Some(scope)) if scope.starts_with(path.as_str()) => {
                Ok(Some(scope.clone()))
            }
            (Some(_), Some(_)) => Err(Error::NotFound("node".into())),
        }
    }
}

/// The longest secret looked up; anything longer is no token of ours.
const MAX_SECRET_LEN: usize = 256;

/// Resolves the caller of a request.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    /// Whether callers must present a bearer token. When not, the server does not read the request's
    /// credentials at all (whatever a caller sends is ignored, however malformed).
    fn requires_token(&self) -> bool;

    /// The principal of a caller presenting the bearer token `token` (its secret), or `None` when
    /// it presented none.
    async fn authenticate(&self, token: Option<&str>) -> Result<Principal, Error>;

    /// Checks that an authenticated principal still holds (its token is neither revoked nor expired);
    /// long-lived streams call it as they go.
    async fn recheck(&self, principal: &Principal) -> Result<(), Error>;

    /// `token` is one this authenticator has found valid before, answered from memory. A caller whose
    /// address is over its failed-authentication allowance still gets through with one (it is then
    /// authenticated as usual), so a flood of bad tokens from a shared address (a proxy, a NAT) does not
    /// lock out the clients behind it.
    fn known(&self, _token: Option<&str>) -> bool {
        false
    }
}

/// Everyone is the local all-access principal (loopback use, demos and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAllAccess;

#[async_trait::async_trait]
impl Authenticator for LocalAllAccess {
    fn requires_token(&self) -> bool {
        false
    }

    async fn authenticate(&self, _token: Option<&str>) -> Result<Principal, Error> {
        Ok(Principal::local())
    }

    async fn recheck(&self, _principal: &Principal) -> Result<(), Error> {
        Ok(())
    }
}

/// How long a token lookup is trusted before the store is asked again: a revocation takes effect
/// within this long.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
/// Lookups kept at most; the cache starts over beyond it (unknown tokens are cached too).
const TOKEN_CACHE_ENTRIES: usize = 10_000;
/// Hashes of tokens found valid kept at most (a district issues hundreds); kept apart from the cache
/// so that a flood of unknown tokens cannot push them out.
const KNOWN_TOKENS: usize = 100_000;

/// Bearer tokens checked against the store's hashes, with a short cache.
#[derive(Debug)]
pub struct TokenAuthenticator {
    engine: Arc<Engine>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<TokenRecord>)>>,
    known: Mutex<std::collections::HashSet<String>>,
}

impl TokenAuthenticator {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self::with_cache_ttl(engine, TOKEN_CACHE_TTL)
    }

    pub fn with_cache_ttl(engine: Arc<Engine>, ttl: Duration) -> Self {
        TokenAuthenticator {
            engine,
            ttl,
            cache: Mutex::new(HashMap::new()),
            known: Mutex::new(std::collections::HashSet::new()),
        }
    }

    async fn lookup(&self, hash: &str) -> Result<Option<TokenRecord>, Error> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, record)) = cache.get(hash)
                && at.elapsed() < self.ttl
            {
                return Ok(record.clone());
            }
        }
        let record = self.engine.store().token_by_hash(hash).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= TOKEN_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(hash.to_owned(), (Instant::now(), record.clone()));
        Ok(record)
    }

    /// The token's record if it is still good now.
    async fn valid(&self, hash: &str) -> Result<TokenRecord, Error> {
        let record = self
            .lookup(hash)
            .await?
            .ok_or_else(|| Error::Unauthenticated("unknown token".into()))?;
        let now = self.engine.now();
        if record.revoked_at.is_some_and(|at| at <= now) {
            return Err(Error::Unauthenticated(format!(
                "token {} was revoked",
                record.id
            )));
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::Unauthenticated(format!(
                "token {} has expired",
                record.id
            )));
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() < KNOWN_TOKENS {
            known.insert(hash.to_owned());
        }
        Ok(record)
    }
}

#[async_trait::async_trait]
impl Authenticator for TokenAuthenticator {
    fn requires_token(&self) -> bool {
        true
    }

    async fn authenticate(&self, token: Option<&str>) -> Result<Principal, Error> {
        let secret = token.ok_or_else(|| {
            Error::Unauthenticated(
                "this service requires authentication: send `authorization: Bearer TOKEN` \
                 (tokens come from `doorstep token create`)"
                    .into(),
            )
        })?;
        if secret.len() > MAX_SECRET_LEN {
            return Err(Error::Unauthenticated("unknown token".into()));
        }
        let hash = tokens::hash(secret);
        let record = self.valid(&hash).await?;
        let role: Role = record.role.parse().map_err(|e: String| {
            Error::Internal(format!("token {}: stored role: {e}", record.id))
        })?;
        let scope = NodeCode::parse(&record.scope)
            .map_err(|e| Error::Internal(format!("token {}: stored scope: {e}", record.id)))?;
        let district = self.engine.district();
        let tree = &district.jurisdiction;
        let path = tree.node_path(&scope).ok_or_else(|| {
            Error::Forbidden(format!(
                "the scope of token {}, node {scope}, is no longer in the district",
                record.id
            ))
        })?;
        let district_wide = tree.node(&scope).is_some_and(|n| n.parent.is_none());
        let unit = record
            .unit
            .as_deref()
            .map(UnitCode::parse)
            .transpose()
            .map_err(|e| Error::Internal(format!("token {}: stored unit: {e}", record.id)))?;
        if (role == Role::Unit) != unit.is_some() {
            // `tokens::issue` never stores this; a hand-edited row must not widen a unit's reach.
            return Err(Error::Internal(format!(
                "token {}: a unit token names exactly one unit, and only a unit token does",
                record.id
            )));
        }
        Ok(Principal {
            name: record.name,
            role,
            scope: (!district_wide).then_some(scope),
            scope_path: (!district_wide).then_some(path),
            unit,
            token: Some(TokenRef {
                id: record.id,
                hash,
            }),
        })
    }

    fn known(&self, token: Option<&str>) -> bool {
        token.is_some_and(|secret| {
            secret.len() <= MAX_SECRET_LEN
                && self
                    .known
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&tokens::hash(secret))
        })
    }

    async fn recheck(&self, principal: &Principal) -> Result<(), Error> {
        match &principal.token {
            Some(token) => self.valid(&token.hash).await.map(|_| ()),
            None => Ok(()),
        }
    }
}
