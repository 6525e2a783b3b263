//! The SQLite files hold callers' names and phone numbers: only their owner may read them.

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_log_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    use doorstep_store::testing::{TempDir, test_options};

    let dir = TempDir::new("doorstep-sqlite-files").unwrap();
    let path = dir.path().join("doorstep.db");
    let store = doorstep_store::connect(&format!("sqlite://{}", path.display()), &test_options())
        .await
        .unwrap();
    // A write, so that the write-ahead log and the shared memory exist.
    store.put_policy("", chrono::Utc::now()).await.unwrap();
    for name in ["doorstep.db", "doorstep.db-wal", "doorstep.db-shm"] {
        let file = dir.path().join(name);
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
    store.close().await.unwrap();
}
