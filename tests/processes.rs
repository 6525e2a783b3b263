//! What the process tests share: the `doorstep` children of the multi-process scenario
//! ([`Process`], [`run_cli`]), a first boot as an operator does it, clients for a running `serve`,
//! and bounded polling. Each test binary uses part of it.
#![allow(dead_code)]

#[path = "multiprocess/fleet.rs"]
mod fleet;

use std::path::Path;
use std::time::Duration;

use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use tonic::transport::{Channel, Endpoint};

pub(crate) use fleet::{Process, run_cli};

/// The compound the tests file tickets at; the catalogue dispatches its stairwell lighting to the
/// yard's workers.
pub(crate) const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";

/// A file of the example deployment.
pub(crate) fn example(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/examples")
        .join(file)
        .display()
        .to_string()
}

/// First boot on an empty database, as an operator does it: migrate, import the example district,
/// publish `policy` (a policy file's text, written to `dir`).
pub(crate) async fn first_boot(database_url: &str, dir: &Path, policy: &str) {
    run_cli(&["migrate"], database_url).await;
    run_cli(
        &["district", "import", &example("lixia.toml")],
        database_url,
    )
    .await;
    put_policy(database_url, dir, "policy.toml", policy).await;
}

/// Stores `policy` as the newest policy version through `doorstep policy put`.
pub(crate) async fn put_policy(database_url: &str, dir: &Path, file: &str, policy: &str) {
    let path = dir.join(file);
    std::fs::write(&path, policy).expect("the policy file");
    run_cli(
        &["policy", "put", path.to_str().expect("a UTF-8 path")],
        database_url,
    )
    .await;
}

/// A channel to a running `serve`.
pub(crate) async fn channel(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

pub(crate) async fn tickets(addr: &str) -> TicketServiceClient<Channel> {
    TicketServiceClient::new(channel(addr).await)
}

pub(crate) async fn admin(addr: &str) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(channel(addr).await)
}

/// A hotline ticket about a dark stairwell at [`YARD`].
pub(crate) fn intake(external_ref: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "王先生".into(),
            phone: "13700000002".into(),
            confidential: false,
        }),
        category: "lighting.stairwell".into(),
        content: "楼道灯不亮".into(),
        address: "解放路129号院".into(),
        node: YARD.into(),
        ..Default::default()
    }
}

/// The ticket `id` and its events, read through `client`.
pub(crate) async fn timeline(
    client: &mut TicketServiceClient<Channel>,
    id: &str,
) -> (w::Ticket, Vec<w::Event>) {
    let t = client
        .get_timeline(w::GetTimelineRequest {
            id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("the timeline of {id}: {e}"))
        .into_inner();
    (t.ticket.expect("the ticket"), t.events)
}

/// Polls `check` every 100 ms until it answers `Some`, for at most `limit`; panics naming `what`.
pub(crate) async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An instant of the wire, in milliseconds since the epoch.
pub(crate) fn millis(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("an instant");
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

/// How many migration files the repository has for `backend` (`sqlite` or `postgres`).
pub(crate) fn migrations_in_repository(backend: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count()
}
