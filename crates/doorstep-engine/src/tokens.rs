//! Issuing API tokens: 32 random bytes shown once as `dst_` + hex, stored only as their SHA-256.

use chrono::{DateTime, Utc};
use doorstep_domain::{NodeCode, UnitCode};
use doorstep_store::{Store, TokenRecord};
use sha2::{Digest, Sha256};

use crate::access::Role;
use crate::error::Error;

/// Every token starts so (secret scanners and people can tell what it is).
pub const PREFIX: &str = "dst_";

/// The stored form of a token: lowercase hex SHA-256.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| Error::Internal(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(buf))
}

/// What `doorstep token create` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The principal's name (the actor on its events); `None` = `ROLE@SCOPE` (or the unit; for intake
    /// `intake@SCOPE#ID`, as an intake token's name must be its own).
    pub name: Option<String>,
    pub role: Role,
    pub scope: Option<NodeCode>,
    /// Required for, and only for, the handling-unit role.
    pub unit: Option<UnitCode>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token just issued: the secret (shown once) and what was stored.
#[derive(Debug, Clone)]
pub struct Issued {
    pub secret: String,
    pub record: TokenRecord,
}

/// Checks the request against the stored district and stores a new token.
pub async fn issue(
    store: &dyn Store,
    request: TokenRequest,
    now: DateTime<Utc>,
) -> Result<Issued, Error> {
    let district = store.load_district().await?;
    let tree = &district.jurisdiction;
    let unit = match (request.role, &request.unit) {
        (Role::Unit, None) => {
            return Err(Error::invalid(
                "unit",
                "a handling unit's token names its unit (--unit CODE)",
            ));
        }
        (Role::Unit, Some(code)) => Some(
            tree.unit(code)
                .ok_or_else(|| Error::invalid("unit", format!("unknown unit {code}")))?,
        ),
        (role, Some(_)) => {
            return Err(Error::invalid(
                "unit",
                format!("only a unit token names a unit, not a {role} token"),
            ));
        }
        (_, None) => None,
    };
    let scope = match (&request.scope, unit) {
        (Some(scope), _) => scope.clone(),
        // A unit reaches its own node's subtree unless told otherwise.
        (None, Some(unit)) => unit.node.clone(),
        (None, None) => {
            return Err(Error::invalid(
                "scope",
                "is required: the jurisdiction node the token reaches (the district's own code \
                 for all of it)",
            ));
        }
    };
    if tree.node(&scope).is_none() {
        return Err(Error::invalid(
            "scope",
            format!("unknown jurisdiction node {scope} (is the district loaded?)"),
        ));
    }
    if let Some(at) = request.expires_at
        && at <= now
    {
        return Err(Error::invalid("expires", "is in the past"));
    }
    let id = format!("tok_{}", random_hex(6)?);
    let name = match request.name {
        Some(name) => doorstep_domain::ids::required_text("name", &name, 100)?,
        None => match &request.unit {
            Some(unit) => unit.to_string(),
            // Intake owns what it files under its name: a default shared by every intake token of a
            // scope would let each read the others' callers.
            None if request.role == Role::Intake => format!("{}@{scope}#{id}", request.role),
            None => format!("{}@{scope}", request.role),
        },
    };
    // Events are recorded under the principal's name; the scheduler's name is what marks an event as
    // the scheduler's own (its yellow cards do not abort people's actions), so no token may carry it.
    if name == doorstep_domain::Actor::SCHEDULER || name == "local" {
        return Err(Error::invalid(
            "name",
            format!("{name:?} is reserved for the service itself; choose another name"),
        ));
    }
    check_name_is_own(store, request.role, &name).await?;
    let secret = format!("{PREFIX}{}", random_hex(32)?);
    let record = TokenRecord {
        id,
        name,
        hash: hash(&secret),
        role: request.role.as_str().to_owned(),
        scope: scope.to_string(),
        unit: request.unit.as_ref().map(ToString::to_string),
        created_at: now,
        expires_at: request.expires_at,
        revoked_at: None,
    };
    store.create_token(&record).await?;
    tracing::info!(token = %record.id, role = %record.role, scope = %record.scope, "token issued");
    Ok(Issued { secret, record })
}

/// Intake reads back (unmasked) the tickets filed under its principal name, so an intake token's name
/// must be its own: no other token may hold it, and no token may take an intake token's name. (The
/// store's unique index on intake tokens' names settles two intake tokens issued at once.)
async fn check_name_is_own(store: &dyn Store, role: Role, name: &str) -> Result<(), Error> {
    let holder = store
        .list_tokens()
        .await?
        .into_iter()
        .find(|t| t.name == name && (role == Role::Intake || t.role == Role::Intake.as_str()));
    match holder {
        None => Ok(()),
        Some(holder) => Err(Error::AlreadyExists(format!(
            "name: {name:?} is the name of token {} ({}); an intake token owns the tickets filed \
             under its name, so its name is its own: choose another --name (or leave it out)",
            holder.id, holder.role
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32).unwrap());
    }
}
