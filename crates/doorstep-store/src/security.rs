//! API tokens (stored only as a hash) and the append-only audit log of personal-data reads, for both
//! backends. The SQL is the same for both; each backend's `Store` impl delegates here in one line.

use chrono::{DateTime, Utc};

use crate::codec::{from_millis, millis};
use crate::{Result, StoreError};

/// An API token as stored: everything but the secret, which only its holder has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    /// The principal's name, recorded as the actor of what the token does.
    pub name: String,
    /// Lowercase hex SHA-256 of the token as issued.
    pub hash: String,
    pub role: String,
    /// The jurisdiction node whose subtree the token reaches.
    pub scope: String,
    /// For a handling unit's token: the unit it speaks for.
    pub unit: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One read of unmasked personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Time-ordered (a UUIDv7), so it is also the cursor.
    pub id: String,
    pub at: DateTime<Utc>,
    pub principal: String,
    pub token_id: Option<String>,
    pub ticket_id: String,
    /// What was read and through which call, e.g. `caller name and phone via TicketService.GetTicket`.
    pub what: String,
}

/// An audit-log query: entries after `after` (an entry id), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub ticket_id: Option<String>,
    pub principal: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
}

const INSERT_TOKEN: &str = "INSERT INTO api_tokens (id, name, hash, role, scope, unit, created_at, \
    expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const TOKEN_BY_ID: &str = "SELECT id, name, hash, role, scope, unit, created_at, expires_at, \
    revoked_at FROM api_tokens WHERE id = $1";
const TOKEN_BY_HASH: &str = "SELECT id, name, hash, role, scope, unit, created_at, expires_at, \
    revoked_at FROM api_tokens WHERE hash = $1";
const LIST_TOKENS: &str = "SELECT id, name, hash, role, scope, unit, created_at, expires_at, \
    revoked_at FROM api_tokens ORDER BY created_at, id";
/// Revoking twice keeps the first instant.
const REVOKE_TOKEN: &str =
    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
const INSERT_AUDIT: &str = "INSERT INTO audit_log (id, at, principal, token_id, ticket_id, what) \
    VALUES ($1, $2, $3, $4, $5, $6)";
const AUDIT_LOG: &str = "SELECT id, at, principal, token_id, ticket_id, what FROM audit_log \
    WHERE ($1 IS NULL OR ticket_id = $1) AND ($2 IS NULL OR principal = $2) \
    AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4";
const AUDIT_LOG_PG: &str = "SELECT id, at, principal, token_id, ticket_id, what FROM audit_log \
    WHERE ($1::text IS NULL OR ticket_id = $1) AND ($2::text IS NULL OR principal = $2) \
    AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $4";

type TokenRow = (
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
type AuditRow = (String, i64, String, Option<String>, String, String);

fn token(row: TokenRow) -> Result<TokenRecord> {
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

fn audit(row: AuditRow) -> Result<AuditEntry> {
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

fn limit(query: &AuditQuery) -> i64 {
    i64::from(query.limit.clamp(1, 10_000))
}

/// Binds a token's columns to `INSERT_TOKEN`, for either backend.
macro_rules! insert_token {
    ($t:expr) => {
        sqlx::query(INSERT_TOKEN)
            .bind($t.id.clone())
            .bind($t.name.clone())
            .bind($t.hash.clone())
            .bind($t.role.clone())
            .bind($t.scope.clone())
            .bind($t.unit.clone())
            .bind(millis($t.created_at))
            .bind($t.expires_at.map(millis))
            .bind($t.revoked_at.map(millis))
    };
}

macro_rules! insert_audit {
    ($e:expr) => {
        sqlx::query(INSERT_AUDIT)
            .bind($e.id.clone())
            .bind(millis($e.at))
            .bind($e.principal.clone())
            .bind($e.token_id.clone())
            .bind($e.ticket_id.clone())
            .bind($e.what.clone())
    };
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("token {id}"))
}

pub(crate) mod sqlite {
    use sqlx::sqlite::{SqliteConnection, SqlitePool};

    use super::*;

    pub(crate) async fn create_token(conn: &mut SqliteConnection, t: TokenRecord) -> Result<()> {
        insert_token!(t).execute(&mut *conn).await?;
        Ok(())
    }

    pub(crate) async fn revoke_token(
        conn: &mut SqliteConnection,
        id: String,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord> {
        sqlx::query(REVOKE_TOKEN)
            .bind(&id)
            .bind(millis(at))
            .execute(&mut *conn)
            .await?;
        let row: Option<TokenRow> = sqlx::query_as(TOKEN_BY_ID)
            .bind(&id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(token).transpose()?.ok_or_else(|| not_found(&id))
    }

    pub(crate) async fn append_audit(
        conn: &mut SqliteConnection,
        entries: Vec<AuditEntry>,
    ) -> Result<()> {
        for e in &entries {
            insert_audit!(e).execute(&mut *conn).await?;
        }
        Ok(())
    }

    pub(crate) async fn token_by_hash(
        pool: &SqlitePool,
        hash: &str,
    ) -> Result<Option<TokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as(TOKEN_BY_HASH)
            .bind(hash)
            .fetch_optional(pool)
            .await?;
        row.map(token).transpose()
    }

    pub(crate) async fn list_tokens(pool: &SqlitePool) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as(LIST_TOKENS).fetch_all(pool).await?;
        rows.into_iter().map(token).collect()
    }

    pub(crate) async fn audit_log(pool: &SqlitePool, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(AUDIT_LOG)
            .bind(q.ticket_id.as_deref())
            .bind(q.principal.as_deref())
            .bind(q.after.as_deref())
            .bind(limit(q))
            .fetch_all(pool)
            .await?;
        rows.into_iter().map(audit).collect()
    }
}

pub(crate) mod postgres {
    use sqlx::postgres::PgPool;

    use super::*;

    pub(crate) async fn create_token(pool: &PgPool, t: &TokenRecord) -> Result<()> {
        insert_token!(t).execute(pool).await?;
        Ok(())
    }

    pub(crate) async fn revoke_token(
        pool: &PgPool,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord> {
        sqlx::query(REVOKE_TOKEN)
            .bind(id)
            .bind(millis(at))
            .execute(pool)
            .await?;
        let row: Option<TokenRow> = sqlx::query_as(TOKEN_BY_ID)
            .bind(id)
            .fetch_optional(pool)
            .await?;
        row.map(token).transpose()?.ok_or_else(|| not_found(id))
    }

    pub(crate) async fn append_audit(pool: &PgPool, entries: &[AuditEntry]) -> Result<()> {
        let mut tx = pool.begin().await?;
        for e in entries {
            insert_audit!(e).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn token_by_hash(pool: &PgPool, hash: &str) -> Result<Option<TokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as(TOKEN_BY_HASH)
            .bind(hash)
            .fetch_optional(pool)
            .await?;
        row.map(token).transpose()
    }

    pub(crate) async fn list_tokens(pool: &PgPool) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as(LIST_TOKENS).fetch_all(pool).await?;
        rows.into_iter().map(token).collect()
    }

    pub(crate) async fn audit_log(pool: &PgPool, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(AUDIT_LOG_PG)
            .bind(q.ticket_id.as_deref())
            .bind(q.principal.as_deref())
            .bind(q.after.as_deref())
            .bind(limit(q))
            .fetch_all(pool)
            .await?;
        rows.into_iter().map(audit).collect()
    }
}
