//! API tokens (stored only as a hash) and the append-only audit log of personal-data reads: the SQL
//! and the rows, the same on both backends (the audit query's one spelling that differs is in the
//! dialect modules of `common::sql`).

use crate::common::codec::from_millis;
use crate::{AuditEntry, AuditQuery, Result, StoreError, TokenRecord};

pub(crate) const INSERT_TOKEN: &str = "INSERT INTO api_tokens (id, name, hash, role, scope, unit, created_at, \
    expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const TOKEN_BY_ID: &str = "SELECT id, name, hash, role, scope, unit, created_at, expires_at, \
    revoked_at FROM api_tokens WHERE id = $1";
pub(crate) const TOKEN_BY_HASH: &str = "SELECT id, name, hash, role, scope, unit, created_at, expires_at, \
    revoked_at FROM api_tokens WHERE hash = $1";
pub(crate) const LIST_TOKENS: &str = "SELECT id, name, hash, role, scope, unit, created_at, expires_at, \
    revoked_at FROM api_tokens ORDER BY created_at, id";
/// Revoking twice keeps the first instant.
pub(crate) const REVOKE_TOKEN: &str =
    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (id, at, principal, token_id, ticket_id, what) \
    VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) type TokenRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
);
pub(crate) type AuditRow = (String, i64, String, Option<String>, String, String);

pub(crate) fn token(row: TokenRow) -> Result<TokenRecord> {
    let (id, name, hash, role, scope, unit, created_at, expires_at, revoked_at) = row;
    Ok(TokenRecord {
        id,
        name,
        hash,
        role,
        scope,
        unit,
        created_at: from_millis(created_at)?,
        expires_at: expires_at.map(from_millis).transpose()?,
        revoked_at: revoked_at.map(from_millis).transpose()?,
    })
}

pub(crate) fn audit(row: AuditRow) -> Result<AuditEntry> {
    let (id, at, principal, token_id, ticket_id, what) = row;
    Ok(AuditEntry {
        id,
        at: from_millis(at)?,
        principal,
        token_id,
        ticket_id,
        what,
    })
}

pub(crate) fn limit(query: &AuditQuery) -> i64 {
    i64::from(query.limit.clamp(1, 10_000))
}

/// Binds a token's columns to `INSERT_TOKEN`, for either backend.
macro_rules! insert_token {
    ($t:expr) => {
        sqlx::query($crate::common::security::INSERT_TOKEN)
            .bind($t.id.clone())
            .bind($t.name.clone())
            .bind($t.hash.clone())
            .bind($t.role.clone())
            .bind($t.scope.clone())
            .bind($t.unit.clone())
            .bind($crate::common::codec::millis($t.created_at))
            .bind($t.expires_at.map($crate::common::codec::millis))
            .bind($t.revoked_at.map($crate::common::codec::millis))
    };
}

/// Binds an audit entry's columns to `INSERT_AUDIT`, for either backend.
macro_rules! insert_audit {
    ($e:expr) => {
        sqlx::query($crate::common::security::INSERT_AUDIT)
            .bind($e.id.clone())
            .bind($crate::common::codec::millis($e.at))
            .bind($e.principal.clone())
            .bind($e.token_id.clone())
            .bind($e.ticket_id.clone())
            .bind($e.what.clone())
    };
}

pub(crate) fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("token {id}"))
}

pub(crate) use {insert_audit, insert_token};
