//! The schema of each backend, embedded from the top-level `migrations/` folders and applied by
//! sqlx's migrator; the refusal to touch a database migrated by a newer binary.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Result, StoreError};

/// One embedded migration: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

const SQLITE: &[Embedded] = &[
    (
        1,
        "initial schema",
        include_str!("../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "timer due-time index covers the lease",
        include_str!("../../../migrations/sqlite/0002_timer_due_index.sql"),
    ),
    (
        3,
        "reporting",
        include_str!("../../../migrations/sqlite/0003_reporting.sql"),
    ),
    (
        4,
        "security: api tokens, audit log",
        include_str!("../../../migrations/sqlite/0004_security.sql"),
    ),
    (
        5,
        "calendar changes pending re-timing",
        include_str!("../../../migrations/sqlite/0005_calendar_retimings.sql"),
    ),
    (
        6,
        "reporting rows written by a projector behind the event log",
        include_str!("../../../migrations/sqlite/0006_report_projector.sql"),
    ),
    (
        7,
        "a configuration version every process polls",
        include_str!("../../../migrations/sqlite/0007_config_version.sql"),
    ),
    (
        8,
        "red cards: tickets that breached a deadline",
        include_str!("../../../migrations/sqlite/0008_breached.sql"),
    ),
    (
        9,
        "look-up by the source system's own number",
        include_str!("../../../migrations/sqlite/0009_external_ref_lookup.sql"),
    ),
    (
        10,
        "notification deliveries",
        include_str!("../../../migrations/sqlite/0010_deliveries.sql"),
    ),
    (
        11,
        "node moves carry their tickets' paths; an intake token's name is its own",
        include_str!("../../../migrations/sqlite/0011_node_moves_intake_names.sql"),
    ),
];

const POSTGRES: &[Embedded] = &[
    (
        1,
        "initial schema",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "timer due-time index covers the lease",
        include_str!("../../../migrations/postgres/0002_timer_due_index.sql"),
    ),
    (
        3,
        "reporting",
        include_str!("../../../migrations/postgres/0003_reporting.sql"),
    ),
    (
        4,
        "security: api tokens, audit log",
        include_str!("../../../migrations/postgres/0004_security.sql"),
    ),
    (
        5,
        "calendar changes pending re-timing",
        include_str!("../../../migrations/postgres/0005_calendar_retimings.sql"),
    ),
    (
        6,
        "reporting rows written by a projector behind the event log",
        include_str!("../../../migrations/postgres/0006_report_projector.sql"),
    ),
    (
        7,
        "a configuration version every process polls",
        include_str!("../../../migrations/postgres/0007_config_version.sql"),
    ),
    (
        8,
        "red cards: tickets that breached a deadline",
        include_str!("../../../migrations/postgres/0008_breached.sql"),
    ),
    (
        9,
        "look-up by the source system's own number",
        include_str!("../../../migrations/postgres/0009_external_ref_lookup.sql"),
    ),
    (
        10,
        "notification deliveries",
        include_str!("../../../migrations/postgres/0010_deliveries.sql"),
    ),
    (
        11,
        "node moves carry their tickets' paths; an intake token's name is its own",
        include_str!("../../../migrations/postgres/0011_node_moves_intake_names.sql"),
    ),
];

/// The table sqlx's migrator keeps its record in.
pub(crate) const TABLE: &str = "_sqlx_migrations";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn embedded(self) -> &'static [Embedded] {
        match self {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        }
    }

    pub(crate) fn migrator(self) -> Migrator {
        Migrator::with_migrations(
            self.embedded()
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect(),
        )
    }

    /// Refuses a database that has a migration this binary does not know, before anything is
    /// written to it.
    pub(crate) fn check_not_newer(self, applied: &BTreeSet<i64>) -> Result<()> {
        let known: BTreeSet<i64> = self.embedded().iter().map(|(v, _, _)| *v).collect();
        match applied.iter().rev().find(|v| !known.contains(v)) {
            Some(unknown) => Err(StoreError::TooNew(*unknown)),
            None => Ok(()),
        }
    }

    /// What a migration run did to `database`, from the versions applied before and after it.
    pub(crate) fn report(
        self,
        database: String,
        before: &BTreeSet<i64>,
        after: &BTreeSet<i64>,
    ) -> MigrationReport {
        let describe = |v: &i64| (*v, self.describe(*v).to_owned());
        MigrationReport {
            database,
            applied_now: after.difference(before).map(describe).collect(),
            already_applied: before.iter().map(describe).collect(),
        }
    }

    pub(crate) fn describe(self, version: i64) -> &'static str {
        self.embedded()
            .iter()
            .find(|(v, _, _)| *v == version)
            .map_or("unknown", |(_, d, _)| d)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// What `doorstep migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The database, with any password hidden.
    pub database: String,
    /// Applied by this run: (version, description).
    pub applied_now: Vec<(i64, String)>,
    /// Found already applied.
    pub already_applied: Vec<(i64, String)>,
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[(i64, String)]| {
            items
                .iter()
                .map(|(v, d)| format!("{v} ({d})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.applied_now.is_empty() {
            write!(
                f,
                "{}: up to date, {} migration(s) already applied",
                self.database,
                self.already_applied.len()
            )
        } else {
            write!(f, "{}: applied {}", self.database, list(&self.applied_now))?;
            if !self.already_applied.is_empty() {
                write!(f, "; already applied {}", list(&self.already_applied))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_with_an_unknown_migration_is_too_new() {
        assert!(Backend::Sqlite.check_not_newer(&BTreeSet::new()).is_ok());
        assert!(
            Backend::Sqlite
                .check_not_newer(&BTreeSet::from([1]))
                .is_ok()
        );
        assert!(matches!(
            Backend::Postgres.check_not_newer(&BTreeSet::from([1, 99])),
            Err(StoreError::TooNew(99))
        ));
        assert_eq!(Backend::Sqlite.migrator().iter().count(), SQLITE.len());
    }
}
