//! TLS to PostgreSQL: a throwaway cluster with `ssl = on`, a certificate for `localhost` issued by
//! a CA the test makes (with the `openssl` command), and pg_hba.conf accepting TCP over TLS only.
//!
//! - `sslmode=require` connects over TLS (`pg_stat_ssl` says so) and the store opens and migrates;
//! - `prefer` (what a URL without `sslmode` means) negotiates TLS when the server offers it;
//! - `sslmode=disable` is refused by the server;
//! - `verify-full` with `sslrootcert=` the CA connects to `localhost`, and fails with another CA or
//!   with a host name the certificate does not name (`127.0.0.1`), where `verify-ca` still connects.

use std::path::Path;

use doorstep_store::testing::{self, ClusterOptions, PgCluster, TempDir, TestCertificates};
use sqlx::Connection as _;

/// Whether the connection `url` opens is encrypted, as the server sees it.
async fn connected_over_tls(url: &str) -> Result<bool, sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
    let _ = conn.close().await;
    Ok(ssl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_postgres_is_reached_with_every_sslmode_that_should() {
    let Some(bindir) = testing::find_pg_bindir() else {
        assert!(
            !testing::postgres_required(),
            "DOORSTEP_TEST_PG=required, but PostgreSQL is not installed"
        );
        eprintln!("SKIPPED postgres TLS test: PostgreSQL is not installed");
        return;
    };
    let certs = TempDir::new("doorstep-tls").expect("a temporary folder");
    let TestCertificates {
        ca,
        other_ca,
        server: tls,
    } = match TestCertificates::make(certs.path()) {
        Ok(made) => made,
        Err(why) => {
            assert!(
                !testing::postgres_required(),
                "DOORSTEP_TEST_PG=required, but no certificate could be made: {why}"
            );
            eprintln!("SKIPPED postgres TLS test: {why}");
            return;
        }
    };
    let cluster = PgCluster::start_with_tls(&bindir, ClusterOptions { durable: false }, &tls)
        .unwrap_or_else(|e| panic!("a TLS cluster: {e}"));
    cluster.create_database("tls").await.expect("a database");
    let url = |host: &str, query: &str| {
        let base = cluster.tcp_url(host, "tls_0").expect("listening on TCP");
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    };

    // require: encrypted, without checking the certificate; the store opens, migrates and answers.
    let require = url("127.0.0.1", "sslmode=require");
    assert!(connected_over_tls(&require).await.expect("sslmode=require"));
    let report = doorstep_store::migrate(&require)
        .await
        .expect("doorstep migrate over TLS");
    assert!(!report.applied_now.is_empty(), "{report:?}");
    let store = doorstep_store::connect(&require, &testing::test_options())
        .await
        .expect("the store opens over TLS");
    store.ping().await.expect("the store answers over TLS");
    assert_eq!(store.last_seq().await.unwrap(), 0);
    store.close().await.unwrap();

    // prefer, the default: TLS whenever the server offers it.
    for query in ["", "sslmode=prefer"] {
        assert!(
            connected_over_tls(&url("127.0.0.1", query))
                .await
                .unwrap_or_else(|e| panic!("{query:?}: {e}")),
            "{query:?} negotiates TLS"
        );
    }

    // disable: plain text, which pg_hba.conf has no line for.
    let err = connected_over_tls(&url("127.0.0.1", "sslmode=disable"))
        .await
        .expect_err("plain text is refused");
    assert!(err.to_string().contains("no encryption"), "{err}");
    assert!(
        doorstep_store::connect(
            &url("127.0.0.1", "sslmode=disable"),
            &testing::test_options()
        )
        .await
        .is_err()
    );

    // verify-full: the CA and the host name are both checked.
    let rootcert = |ca: &Path| format!("sslrootcert={}", ca.display());
    let full = url(
        "localhost",
        &format!("sslmode=verify-full&{}", rootcert(&ca)),
    );
    assert!(
        connected_over_tls(&full)
            .await
            .expect("verify-full with our CA")
    );
    let store = doorstep_store::connect(&full, &testing::test_options())
        .await
        .expect("the store opens with verify-full");
    store
        .ping()
        .await
        .expect("the store answers with verify-full");
    store.close().await.unwrap();
    let wrong_ca = url(
        "localhost",
        &format!("sslmode=verify-full&{}", rootcert(&other_ca)),
    );
    let err = connected_over_tls(&wrong_ca)
        .await
        .expect_err("a certificate from another CA is refused");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    let started = std::time::Instant::now();
    let err = doorstep_store::connect(&wrong_ca, &testing::test_options())
        .await
        .expect_err("the store refuses it too")
        .to_string();
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "the operator is told why: {err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused at once, not retried until the connect timeout: {:?}",
        started.elapsed()
    );
    let wrong_ca = url(
        "localhost",
        &format!("sslmode=verify-ca&{}", rootcert(&other_ca)),
    );
    assert!(
        connected_over_tls(&wrong_ca).await.is_err(),
        "verify-ca checks the CA"
    );
    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca does not mind.
    let by_address = |mode: &str| url("127.0.0.1", &format!("sslmode={mode}&{}", rootcert(&ca)));
    let err = connected_over_tls(&by_address("verify-full"))
        .await
        .expect_err("a host name the certificate does not name is refused");
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    assert!(
        connected_over_tls(&by_address("verify-ca"))
            .await
            .expect("verify-ca with our CA")
    );
    cluster.stop();
}
