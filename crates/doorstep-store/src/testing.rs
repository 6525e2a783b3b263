//! Databases for tests and benchmarks (feature `testing`): a temporary SQLite file, and a throwaway
//! PostgreSQL cluster started from the installed binaries.
//!
//! The cluster lives in a fresh temporary folder, listens only on a Unix socket there (and, started
//! by [`PgCluster::start_with_tls`], on 127.0.0.1 with TLS only), and is run
//! by the `postgres` user when we are root (initdb refuses root). It is removed by a watchdog: a
//! small detached shell started with the cluster that polls this process and, once it is gone
//! however it ended (success, failed test, panic, abort, SIGKILL), stops the cluster and deletes the
//! folder. A `Drop` on a static never runs, and tests that fail still have to clean up; the watchdog
//! covers both without any code on the exit path. [`PgCluster::stop`] does it at once.
//!
//! [`TestDb::postgres`] decides what happens without PostgreSQL: it prints one line starting
//! `SKIPPED postgres suite: ` and the caller passes, unless `DOORSTEP_TEST_PG=required`, when it
//! panics.
//!
//! A test written once for both backends is an `async fn` taking a [`Fixture`] (a [`TestDb`], a
//! [`TestDatabase`], or a crate's own harness built on one), listed in [`both_backends!`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection as _, Executor as _};

use crate::{ConnectOptions, SqliteSync, Store, connect};

/// A folder removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the cluster is tuned for.
#[derive(Debug, Clone, Copy)]
pub struct ClusterOptions {
    /// `false` for tests (fsync, synchronous_commit and full-page writes off); `true` for benchmarks
    /// that should pay for durability like a real server.
    pub durable: bool,
}

/// What a cluster started by [`PgCluster::start_with_tls`] serves on 127.0.0.1: `ssl = on` with
/// this certificate, and TCP connections accepted over TLS only (`hostssl` lines in pg_hba.conf, no
/// `host` line). The Unix socket stays open without TLS, for setting databases up.
#[derive(Clone)]
pub struct TlsListen {
    /// The server's certificate (chain), PEM.
    pub cert_pem: Vec<u8>,
    /// Its private key, PEM.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListen").finish_non_exhaustive()
    }
}

/// Certificates for a TLS test cluster, made with the `openssl` command in a folder: a CA, a
/// server certificate it issued for `localhost` only (no IP address), and another CA that issued
/// nothing here (for "wrong CA" cases).
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The issuing CA's certificate (PEM), for `sslrootcert=`.
    pub ca: PathBuf,
    /// A CA that did not issue the server's certificate.
    pub other_ca: PathBuf,
    /// The server's certificate and key, for [`PgCluster::start_with_tls`].
    pub server: TlsListen,
}

impl TestCertificates {
    /// Makes them in `dir`; `Err` says what failed (no `openssl`, say).
    pub fn make(dir: &Path) -> Result<TestCertificates, String> {
        Ok(TestCertificates {
            ca: make_ca(dir, "ca")?,
            other_ca: make_ca(dir, "other")?,
            server: make_server_cert(dir, "ca")?,
        })
    }
}

/// Runs `openssl` with `args` in `dir`; `Err` says what failed.
fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A CA named `name` (`NAME.crt`, `NAME.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let config = format!(
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
         [dn]\nCN = doorstep test CA {name}\n\
         [ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n"
    );
    let config_file = format!("{name}.cnf");
    std::fs::write(dir.join(&config_file), config).map_err(|e| e.to_string())?;
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-config",
            &config_file,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
        ],
    )?;
    Ok(dir.join(crt))
}

/// A server certificate for `localhost` only (no IP address), issued by CA `ca`.
fn make_server_cert(dir: &Path, ca: &str) -> Result<TlsListen, String> {
    let ext = "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
               extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n\
               authorityKeyIdentifier = keyid\n";
    std::fs::write(dir.join("server.ext"), ext).map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            "2",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )?;
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    Ok(TlsListen {
        cert_pem: read("server.crt")?,
        key_pem: read("server.key")?,
    })
}

/// A running throwaway PostgreSQL cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    bindir: PathBuf,
    run_as_postgres: bool,
    next_database: AtomicU32,
    /// The TCP port on 127.0.0.1, when it listens there (with TLS).
    port: Option<u16>,
}

/// Where `initdb` and `pg_ctl` are: `$DOORSTEP_PG_BINDIR`, `pg_config --bindir`, the newest
/// `/usr/lib/postgresql/*/bin`, or the folder of `initdb` on the PATH.
pub fn find_pg_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("DOORSTEP_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return has_tools(&dir).then_some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_tools(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_tools(dir))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl PgCluster {
    /// initdb + pg_ctl start in a new temporary folder. `Err` says why it could not start.
    pub fn start(bindir: &Path, options: ClusterOptions) -> Result<PgCluster, String> {
        PgCluster::start_listening(bindir, options, None)
    }

    /// Like [`start`](Self::start), and also listening on 127.0.0.1 (a free port, see
    /// [`tcp_url`](Self::tcp_url)) for TLS connections only.
    pub fn start_with_tls(
        bindir: &Path,
        options: ClusterOptions,
        tls: &TlsListen,
    ) -> Result<PgCluster, String> {
        PgCluster::start_listening(bindir, options, Some(tls))
    }

    fn start_listening(
        bindir: &Path,
        options: ClusterOptions,
        tls: Option<&TlsListen>,
    ) -> Result<PgCluster, String> {
        let run_as_postgres = is_root();
        let dir = TempDir::new("doorstep-pg").map_err(|e| format!("temporary folder: {e}"))?;
        // From here on the folder is the watchdog's to remove.
        let dir = {
            let path = dir.path().to_path_buf();
            std::mem::forget(dir);
            path
        };
        let cluster = PgCluster {
            dir,
            bindir: bindir.to_path_buf(),
            run_as_postgres,
            next_database: AtomicU32::new(0),
            port: match tls {
                Some(_) => Some(free_port()?),
                None => None,
            },
        };
        cluster.spawn_watchdog()?;
        if run_as_postgres {
            let status = Command::new("chown")
                .args(["postgres:", &cluster.dir.display().to_string()])
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err("chown postgres: failed (is there a postgres user?)".into());
            }
        }
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let mut settings = format!(
            "\n# doorstep test cluster\nlisten_addresses = ''\nunix_socket_directories = '{}'\n\
             max_connections = 200\nshared_buffers = 64MB\n",
            cluster.dir.display()
        );
        if !options.durable {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        if let (Some(tls), Some(port)) = (tls, cluster.port) {
            cluster.serve_tls(&data, tls)?;
            settings.push_str(&format!(
                "listen_addresses = '127.0.0.1'\nport = {port}\nssl = on\n\
                 ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            ));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| format!("postgresql.conf: {e}"))?;
        cluster.pg_ctl_start()?;
        Ok(cluster)
    }

    /// Writes the certificate and key into the data folder (the key readable by the server's user
    /// only, as PostgreSQL insists) and a pg_hba.conf accepting TCP connections over TLS only.
    fn serve_tls(&self, data: &Path, tls: &TlsListen) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt as _;

        let hba = "# doorstep test cluster: TCP over TLS only\n\
                   local all all trust\n\
                   hostssl all all 127.0.0.1/32 trust\n\
                   hostssl all all ::1/128 trust\n";
        for (name, contents) in [
            ("server.crt", tls.cert_pem.as_slice()),
            ("server.key", tls.key_pem.as_slice()),
            ("pg_hba.conf", hba.as_bytes()),
        ] {
            let path = data.join(name);
            std::fs::write(&path, contents)
                .and_then(|()| {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                })
                .map_err(|e| format!("{name}: {e}"))?;
            if self.run_as_postgres {
                let status = Command::new("chown")
                    .args(["postgres:", &path.display().to_string()])
                    .stdout(Stdio::null())
                    .status()
                    .map_err(|e| format!("chown: {e}"))?;
                if !status.success() {
                    return Err(format!("chown postgres {name}: failed"));
                }
            }
        }
        Ok(())
    }

    /// `pg_ctl start` on the cluster's data folder; waits until it accepts connections.
    fn pg_ctl_start(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.dir.join("data").display().to_string(),
                "-l",
                &self.dir.join("log").display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    fn command(&self, tool: &str) -> Command {
        let tool = self.bindir.join(tool);
        if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        Err(format!(
            "{tool} failed: {}{}\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Stops the cluster and removes its folder once this process is gone.
    fn spawn_watchdog(&self) -> Result<(), String> {
        use std::os::unix::process::CommandExt as _;

        let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
        let pg_ctl = self.bindir.join("pg_ctl");
        let as_postgres = if self.run_as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             if [ -f {data}/postmaster.pid ]; then {as_postgres}{pg_ctl} -D {data} -m immediate stop; fi; \
             rm -rf {dir}",
            pid = std::process::id(),
            data = quote(&self.dir.join("data")),
            pg_ctl = quote(&pg_ctl),
            dir = quote(&self.dir),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C aimed at the tests does not stop the cleanup.
            .process_group(0)
            .spawn()
            .map(drop)
            .map_err(|e| format!("watchdog: {e}"))
    }

    /// The URL of database `name` on this cluster (as the `postgres` superuser, over the socket).
    pub fn url(&self, name: &str) -> String {
        match self.port {
            // The socket's file is named after the port.
            Some(port) => format!(
                "postgres://postgres@localhost:{port}/{name}?host={}",
                self.dir.display()
            ),
            None => format!(
                "postgres://postgres@localhost/{name}?host={}",
                self.dir.display()
            ),
        }
    }

    /// The URL of database `name` over TCP to `host` (`localhost` or `127.0.0.1`), for a cluster
    /// started with [`start_with_tls`](Self::start_with_tls); the caller appends `?sslmode=…`.
    pub fn tcp_url(&self, host: &str, name: &str) -> Option<String> {
        let port = self.port?;
        Some(format!("postgres://postgres@{host}:{port}/{name}"))
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self, prefix: &str) -> Result<String, String> {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        // The prefix is cut, not the number: two long test names alike in their first characters
        // still get databases of their own (PostgreSQL keeps 63 bytes of a name).
        let prefix: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(50)
            .collect();
        let name = format!("{prefix}_{n}");
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("connecting to the test cluster: {e}"))?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        let _ = admin.close().await;
        Ok(self.url(&name))
    }

    /// Stops the cluster now (the watchdog still removes the folder).
    pub fn stop(&self) {
        let _ = self.stop_with("fast");
    }

    /// Stops the cluster with `pg_ctl stop -m MODE` (`smart`, `fast` or `immediate`: the last is a
    /// crash, recovered from at the next start); keeps its data for [`start_again`](Self::start_again).
    pub fn stop_with(&self, mode: &str) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.dir.join("data").display().to_string(),
                "-m",
                mode,
                "-w",
                "stop",
            ],
        )
    }

    /// Starts a stopped cluster again on the same data and socket, as a restarted database server
    /// comes back to its clients; returns once it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }
}

/// A TCP port free on 127.0.0.1 now (the cluster binds it a moment later).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("a free port: {e}"))
}

/// The cluster this process shares among its tests, started on first use; `Err` explains why there
/// is none.
fn shared_cluster() -> &'static Result<PgCluster, String> {
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let bindir = find_pg_bindir().ok_or_else(|| {
            "PostgreSQL is not installed (no initdb: tried $DOORSTEP_PG_BINDIR, pg_config --bindir, \
             /usr/lib/postgresql/*/bin, PATH)"
                .to_owned()
        })?;
        PgCluster::start(&bindir, ClusterOptions { durable: false })
            .map_err(|e| format!("PostgreSQL from {} did not start: {e}", bindir.display()))
    })
}

/// `DOORSTEP_TEST_PG=required`: a missing PostgreSQL fails the tests.
pub fn postgres_required() -> bool {
    std::env::var("DOORSTEP_TEST_PG").is_ok_and(|v| v.eq_ignore_ascii_case("required"))
}

/// The options tests open stores with: the defaults, with SQLite's fsync relaxed for speed.
pub fn test_options() -> ConnectOptions {
    ConnectOptions {
        sqlite_sync: SqliteSync::Normal,
        ..ConnectOptions::default()
    }
}

/// Which backend a [`TestDb`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An empty, migrated-on-open database of its own for one test.
#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn sqlite(name: &str) -> Option<TestDb> {
        let dir = TempDir::new(&format!("doorstep-{name}")).expect("a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("doorstep.db").display());
        Some(TestDb {
            backend: Backend::Sqlite,
            url,
            _dir: Some(dir),
        })
    }

    /// A fresh database on the shared cluster; `None` (after one loud line) when PostgreSQL is
    /// absent and not required.
    pub async fn postgres(name: &str) -> Option<TestDb> {
        match shared_cluster() {
            Ok(cluster) => {
                let url = cluster
                    .create_database(name)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                Some(TestDb {
                    backend: Backend::Postgres,
                    url,
                    _dir: None,
                })
            }
            Err(why) if postgres_required() => {
                panic!("DOORSTEP_TEST_PG=required, but {why}")
            }
            Err(why) => {
                static ONCE: Once = Once::new();
                ONCE.call_once(|| {
                    // Straight to the file descriptor: the test harness captures `eprintln!`.
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED postgres suite: {why}; set DOORSTEP_TEST_PG=required to make this a failure"
                    );
                });
                None
            }
        }
    }

    /// Opens (and migrates) a store on this database; may be called again for a second handle.
    pub async fn open(&self) -> Arc<dyn Store> {
        connect(&self.url, &test_options())
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.url))
    }

    /// Runs raw SQL on the database, bypassing the store (to stage what a store must refuse).
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("sqlite");
                conn.execute(sql).await.expect("raw SQL");
                let _ = conn.close().await;
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("postgres");
                conn.execute(sql).await.expect("raw SQL");
                let _ = conn.close().await;
            }
        }
    }

    /// One number from raw SQL (e.g. a count).
    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("sqlite");
                let (n,): (i64,) = sqlx::query_as(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("raw SQL");
                let _ = conn.close().await;
                n
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("postgres");
                let (n,): (i64,) = sqlx::query_as(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("raw SQL");
                let _ = conn.close().await;
                n
            }
        }
    }
}

/// A fresh database of one backend for one test, with the store open on it (for tests outside this
/// crate that want a store, not a URL).
#[allow(missing_debug_implementations)]
pub struct TestDatabase {
    pub store: Arc<dyn Store>,
    db: TestDb,
}

impl TestDatabase {
    async fn opened(db: TestDb) -> TestDatabase {
        TestDatabase {
            store: db.open().await,
            db,
        }
    }

    pub async fn sqlite() -> TestDatabase {
        let db = TestDb::sqlite("test")
            .await
            .expect("a sqlite test database");
        TestDatabase::opened(db).await
    }

    /// `None` (after one loud line) when PostgreSQL is absent and not required.
    pub async fn postgres() -> Option<TestDatabase> {
        Some(TestDatabase::opened(TestDb::postgres("test").await?).await)
    }

    /// Another store on the same database: its own connections, as another process would have.
    pub async fn connect_again(&self) -> Arc<dyn Store> {
        self.db.open().await
    }
}

/// What a test written once for both backends is handed: a fresh database of one backend, in the
/// shape the test wants it. [`TestDb`] is a URL (for raw SQL, or to stage a database before a store
/// opens it), [`TestDatabase`] an open store; a crate with a harness of its own (a server started
/// on a database, say) implements this for the harness.
pub trait Fixture: Sized {
    /// The fixture for the test named `test` on `backend`: `None` (after one loud line) when
    /// PostgreSQL is absent and not required, and the test then passes without running.
    fn set_up(backend: Backend, test: &'static str) -> impl Future<Output = Option<Self>>;
}

impl Fixture for TestDb {
    async fn set_up(backend: Backend, test: &'static str) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => TestDb::sqlite(test).await,
            Backend::Postgres => TestDb::postgres(test).await,
        }
    }
}

impl Fixture for TestDatabase {
    async fn set_up(backend: Backend, test: &'static str) -> Option<TestDatabase> {
        Some(TestDatabase::opened(TestDb::set_up(backend, test).await?).await)
    }
}

/// Runs `case` on a fixture of `backend` set up for it, or passes when there is none (see
/// [`Fixture::set_up`]). The body of every test [`both_backends!`] writes.
pub async fn run_on<F, C, Done>(backend: Backend, test: &'static str, case: C)
where
    F: Fixture,
    C: FnOnce(F) -> Done,
    Done: Future<Output = ()>,
{
    if let Some(fixture) = F::set_up(backend, test).await {
        case(fixture).await;
    }
}

/// One test per backend for each case listed: modules `sqlite` and `postgres`, next to the cases,
/// each holding a `#[tokio::test]` of every case's name, so a failure reads `sqlite::case_name`.
///
/// A case is an `async fn` of the module the macro is called in, taking one [`Fixture`] by value;
/// the parameter's type chooses what the test is handed (cases taking different fixtures may share
/// one list). On the PostgreSQL side the test passes without running when PostgreSQL is absent,
/// unless `DOORSTEP_TEST_PG=required`.
///
/// Every test runs on a multi-thread runtime of two workers: cases race writers against each other
/// and must really run in parallel, and CI has two cores. The calling crate needs `tokio` with the
/// `macros` and `rt-multi-thread` features among its dev-dependencies.
///
/// ```no_run
/// use doorstep_store::testing::{TestDatabase, TestDb};
///
/// doorstep_store::both_backends!(a_new_store_is_empty, a_bare_database_migrates);
///
/// async fn a_new_store_is_empty(db: TestDatabase) {
///     assert_eq!(db.store.last_seq().await.unwrap(), 0);
/// }
///
/// async fn a_bare_database_migrates(db: TestDb) {
///     doorstep_store::migrate(&db.url).await.unwrap();
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),+ $(,)?) => {
        $crate::both_backends!(@on sqlite, Sqlite: $($case),+);
        $crate::both_backends!(@on postgres, Postgres: $($case),+);
    };
    (@on $module:ident, $backend:ident: $($case:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::testing::run_on(
                        $crate::testing::Backend::$backend,
                        stringify!($case),
                        super::$case,
                    )
                    .await;
                }
            )+
        }
    };
}
