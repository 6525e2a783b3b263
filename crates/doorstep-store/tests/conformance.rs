//! The store conformance suite: every case in `suite/` runs against SQLite and against a real
//! PostgreSQL (a throwaway cluster this binary starts; see `doorstep_store::testing`).

mod suite;

use suite::*;

doorstep_store::both_backends!(
    tickets_are_created_read_and_historied,
    intake_is_idempotent_under_concurrent_duplicates,
    a_stale_version_conflicts_and_writes_nothing,
    concurrent_commits_each_get_their_own_result,
    timers_follow_commits_and_are_claimed_under_leases,
    lists_filter_by_subtree_status_level_unit_and_deadline,
    pages_stay_stable_while_tickets_arrive,
    events_after_follows_seq_order_and_subtrees,
    a_watcher_never_misses_an_event_under_concurrent_writers,
    district_import_is_idempotent,
    calendar_notices_round_trip,
    policies_are_versioned,
    migrations_report_and_refuse_a_newer_database,
    batched_commits_stand_or_fall_alone_in_order,
    a_chained_commit_after_a_lost_race_is_not_written,
    a_claimed_timer_is_dropped_only_while_unchanged,
    tickets_with_timers_are_found_by_due_time,
    a_claim_never_exceeds_its_limit_on_an_analyzed_table,
    a_batch_writes_what_single_commits_write,
    reporting_rows_follow_the_log_behind_a_durable_cursor,
);

mod configuration {
    use doorstep_store::{ConnectOptions, StoreError, connect, migrate};

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
}
