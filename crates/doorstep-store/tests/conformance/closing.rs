//! Closing a store and backing one up. A close keeps every write answered before it (on SQLite, in
//! the database file alone: the write-ahead log is emptied), does nothing the second time, and
//! refuses writes after it. A backup of an SQLite database in use holds every write answered
//! before it and is only written to a new file; a PostgreSQL database is left to pg_dump.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use doorstep_domain::{Level, TicketId};
use doorstep_store::testing::{Backend, TempDir, TestDb, test_options};
use doorstep_store::{StoreError, TokenRecord};

use crate::world::{World, Y1, file, t0};

doorstep_store::both_backends!(
    a_closed_store_keeps_every_answered_write_in_the_database_file,
    a_backup_holds_every_answered_write_and_never_overwrites,
);

fn token(id: &str) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: format!("console {id}"),
        hash: format!("hash-{id}"),
        role: "dispatcher".into(),
        scope: "lx".into(),
        unit: None,
        created_at: Utc.timestamp_millis_opt(1_790_000_000_000).unwrap(),
        expires_at: None,
        revoked_at: None,
    }
}

/// The SQLite database file behind a test database's URL.
fn sqlite_file(db: &TestDb) -> PathBuf {
    PathBuf::from(db.url.strip_prefix("sqlite://").expect("a sqlite:// URL"))
}

fn wal_bytes(file: &std::path::Path) -> Option<u64> {
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).ok().map(|m| m.len())
}

async fn a_closed_store_keeps_every_answered_write_in_the_database_file(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let ticket = file(
            &*store,
            &world,
            &format!("t-{i}"),
            Y1,
            Level::Routine,
            None,
            t0(),
        )
        .await;
        ids.push(ticket.id);
    }
    if db.backend == Backend::Sqlite {
        assert!(
            wal_bytes(&sqlite_file(&db)).unwrap_or(0) > 0,
            "the writes are in the write-ahead log before the close"
        );
    }

    store.close().await.unwrap();
    store.close().await.expect("a second close does nothing");
    assert!(
        store.create_token(&token("late")).await.is_err(),
        "a closed store takes no more writes"
    );

    let url = match db.backend {
        Backend::Sqlite => {
            let file = sqlite_file(&db);
            let wal = wal_bytes(&file);
            assert!(
                wal.is_none_or(|bytes| bytes == 0),
                "the write-ahead log is emptied into the file: {wal:?} bytes left"
            );
            // The database file alone, as a backup of it would copy it.
            let copy = TempDir::new("doorstep-closed-copy").unwrap();
            std::fs::copy(&file, copy.path().join("doorstep.db")).unwrap();
            let url = format!("sqlite://{}", copy.path().join("doorstep.db").display());
            let found = found(&url, &ids).await;
            assert_eq!(found, ids.len(), "every ticket is in the file copied alone");
            return;
        }
        Backend::Postgres => db.url.clone(),
    };
    assert_eq!(found(&url, &ids).await, ids.len());
}

/// How many of `ids` the database at `url` holds.
async fn found(url: &str, ids: &[TicketId]) -> usize {
    let store = doorstep_store::connect(url, &test_options()).await.unwrap();
    let found = store.get_tickets(ids).await.unwrap().len();
    store.close().await.unwrap();
    found
}

async fn a_backup_holds_every_answered_write_and_never_overwrites(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let ticket = file(
            &*store,
            &world,
            &format!("t-{i}"),
            Y1,
            Level::Routine,
            None,
            t0(),
        )
        .await;
        ids.push(ticket.id);
    }
    let backups = TempDir::new("doorstep-backup").unwrap();
    let to = backups.path().join("backup.db");

    if db.backend == Backend::Postgres {
        let refused = doorstep_store::backup(&db.url, &to).await.unwrap_err();
        assert!(
            matches!(&refused, StoreError::Config(m) if m.contains("pg_dump")),
            "{refused}"
        );
        assert!(!to.exists());
        return;
    }

    // Taken while the store is open and still writing.
    let writing = tokio::spawn({
        let store = store.clone();
        let world = World::new();
        async move {
            for i in 40..80 {
                file(
                    &*store,
                    &world,
                    &format!("t-{i}"),
                    Y1,
                    Level::Routine,
                    None,
                    t0(),
                )
                .await;
            }
        }
    });
    let bytes = doorstep_store::backup(&db.url, &to).await.unwrap();
    assert_eq!(bytes, std::fs::metadata(&to).unwrap().len());
    writing.await.unwrap();
    let url = format!("sqlite://{}", to.display());
    assert_eq!(
        found(&url, &ids).await,
        ids.len(),
        "every ticket answered before the backup"
    );

    // An existing file is never overwritten, even by a backup of the same database.
    let before = std::fs::read(&to).unwrap();
    let refused = doorstep_store::backup(&db.url, &to).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Config(m) if m.contains("already exists")),
        "{refused}"
    );
    assert_eq!(std::fs::read(&to).unwrap(), before);

    // A missing database is not created by a backup of it.
    let missing = backups.path().join("missing.db");
    let url = format!("sqlite://{}", missing.display());
    assert!(
        doorstep_store::backup(&url, &backups.path().join("b2.db"))
            .await
            .is_err()
    );
    assert!(!missing.exists());
    store.close().await.unwrap();
}
