//! Connecting and migrating: bad URLs and unreachable servers are one-line errors that keep
//! passwords out, and the schema's version is reported, and a newer database refused.

use doorstep_domain::Level;
use doorstep_store::testing::{Backend, TestDb};
use doorstep_store::{ConnectOptions, StoreError, connect, migrate};

use crate::world::{World, Y1, file, t0};

doorstep_store::both_backends!(migrations_report_and_refuse_a_newer_database);

fn config_error(result: doorstep_store::Result<impl Sized>) -> String {
    match result {
        Err(StoreError::Config(message)) => {
            assert_eq!(message.lines().count(), 1, "{message}");
            message
        }
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("expected a configuration error, got a store"),
    }
}

#[tokio::test]
async fn bad_urls_and_paths_are_one_line_errors_naming_them() {
    let options = ConnectOptions::default();
    let message = config_error(connect("mysql://root:pw@db/doorstep", &options).await);
    assert!(
        message.contains("mysql://root:***@db/doorstep"),
        "{message}"
    );
    assert!(!message.contains("pw@"), "{message}");

    let message = config_error(connect("sqlite:///no/such/dir/doorstep.db", &options).await);
    assert!(message.contains("/no/such/dir/doorstep.db"), "{message}");
    assert!(!std::path::Path::new("/no/such/dir").exists());

    let message = config_error(migrate("sqlite:///no/such/dir/doorstep.db").await);
    assert!(message.contains("/no/such/dir/doorstep.db"), "{message}");

    let message = config_error(connect("sqlite::memory:", &options).await);
    assert!(message.contains("sqlite://PATH"), "{message}");
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let options = ConnectOptions {
        connect_timeout: std::time::Duration::from_secs(2),
        ..ConnectOptions::default()
    };
    let url = "postgres://doorstep:s3cr3t@/doorstep?host=/nonexistent-doorstep-socket-dir";
    let message = config_error(connect(url, &options).await);
    assert!(message.contains("doorstep:***@"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
    let message = config_error(connect("postgres://x:y@[bad", &options).await);
    assert!(!message.contains(":y@"), "{message}");
}

async fn migrations_report_and_refuse_a_newer_database(db: TestDb) {
    let report = migrate(&db.url).await.unwrap();
    // Every embedded migration, the initial schema first (later ones may leave gaps in numbering).
    let all = report.applied_now.len();
    assert!(report.already_applied.is_empty(), "{report}");
    assert!(
        report.to_string().contains("applied 1 (initial schema)"),
        "{report}"
    );
    let report = migrate(&db.url).await.unwrap();
    assert!(report.applied_now.is_empty(), "{report}");
    assert_eq!(report.already_applied.len(), all, "{report}");
    assert!(report.to_string().contains("up to date"), "{report}");

    let world = World::new();
    let store = db.open().await;
    let ticket = file(&*store, &world, "t-1", Y1, Level::Routine, None, t0()).await;
    drop(store);

    db.execute(match db.backend {
        Backend::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, X'00', 0)"
        }
        Backend::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, decode('00', 'hex'), 0)"
        }
    })
    .await;
    let refused = doorstep_store::connect(&db.url, &doorstep_store::testing::test_options()).await;
    assert!(
        matches!(refused, Err(StoreError::TooNew(9999))),
        "{refused:?}"
    );
    assert!(matches!(
        migrate(&db.url).await,
        Err(StoreError::TooNew(9999))
    ));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
        all as i64 + 1
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tickets").await, 1);

    db.execute("DELETE FROM _sqlx_migrations WHERE version = 9999")
        .await;
    let store = db.open().await;
    assert_eq!(store.get_ticket(&ticket.id).await.unwrap(), Some(ticket));
}
