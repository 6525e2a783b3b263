//! `doorstep migrate` against a PostgreSQL that accepts TLS connections only, as an operator runs it:
//! `sslmode=verify-full` with the CA in `sslrootcert=` migrates; `sslmode=disable` is refused by the
//! server, and the one-line error says why.

use std::process::{Command, Output};

use doorstep_store::testing::{self, ClusterOptions, PgCluster, TempDir, TestCertificates};

fn migrate(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(["migrate", "--database-url", url])
        .env_remove("DOORSTEP_DATABASE_URL")
        .output()
        .expect("the doorstep binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_reaches_a_tls_only_postgres() {
    let Some(bindir) = testing::find_pg_bindir() else {
        assert!(
            !testing::postgres_required(),
            "DOORSTEP_TEST_PG=required, but PostgreSQL is not installed"
        );
        eprintln!("SKIPPED postgres TLS test: PostgreSQL is not installed");
        return;
    };
    let dir = TempDir::new("doorstep-cli-tls").expect("a temporary folder");
    let certs = match TestCertificates::make(dir.path()) {
        Ok(certs) => certs,
        Err(why) => {
            assert!(
                !testing::postgres_required(),
                "DOORSTEP_TEST_PG=required, but no certificate could be made: {why}"
            );
            eprintln!("SKIPPED postgres TLS test: {why}");
            return;
        }
    };
    let cluster =
        PgCluster::start_with_tls(&bindir, ClusterOptions { durable: false }, &certs.server)
            .unwrap_or_else(|e| panic!("a TLS cluster: {e}"));
    cluster.create_database("cli").await.expect("a database");
    let base = cluster.tcp_url("localhost", "cli_0").expect("on TCP");

    let plain = migrate(&format!("{base}?sslmode=disable"));
    assert!(!plain.status.success(), "plain text is refused");
    let err = text(&plain.stderr);
    assert!(err.contains("no encryption"), "{err}");

    let verified = migrate(&format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        certs.ca.display()
    ));
    let (out, err) = (text(&verified.stdout), text(&verified.stderr));
    assert!(verified.status.success(), "{out}{err}");
    assert!(!out.trim().is_empty(), "says what it applied: {err}");

    let again = migrate(&format!("{base}?sslmode=require"));
    assert!(again.status.success(), "{}", text(&again.stderr));
    cluster.stop();
}
