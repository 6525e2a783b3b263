#![allow(unreachable_pub)]
//! Stale versions end to end: a yellow card fired while a unit had the ticket open does not abort
//! the unit's sign-for sent with the version it read; a person's action in between still answers
//! ABORTED. The server runs with timers firing on the wall clock under a policy of seconds.

use std::sync::Arc;
use std::time::Duration;

use doorstep_domain::SystemClock;
use doorstep_engine::Engine;
use doorstep_engine::engine::Fired;
use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_store::testing::TestDatabase;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

use super::{action, intake};
use crate::harness::{Backend, Serving, lixia_engine, serve_without_tokens};

doorstep_store::both_backends!(
    a_yellow_card_does_not_abort_a_sign_for_sent_with_the_version_read_before_it
);

const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
/// The yellow card 2.4 s after dispatch; the sign-for breach two minutes on, well after the test,
/// however loaded the machine is.
const SECONDS_POLICY: &str = "warning_share = 0.02\nacknowledge_within = \"120s\"\n";

/// The real server over a fresh database, with the timers of its engine firing as they fall due (as
/// the scheduler of `doorstep serve` fires them: claimed, fired in a batch, stale ones dropped).
pub struct Timed {
    channel: Channel,
    _running: Serving,
    firing: JoinHandle<()>,
    _database: TestDatabase,
}

impl Timed {
    async fn start(backend: Backend) -> Option<Timed> {
        let (database, engine) = lixia_engine(backend, Arc::new(SystemClock)).await?;
        let (running, channel) = serve_without_tokens(Arc::clone(&engine)).await;
        let firing = tokio::spawn(fire_due_timers(engine));
        Some(Timed {
            channel,
            _running: Serving::from(running),
            firing,
            _database: database,
        })
    }

    fn tickets(&self) -> TicketServiceClient<Channel> {
        TicketServiceClient::new(self.channel.clone())
    }

    fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }
}

/// Every 50 ms, fires the timers due.
async fn fire_due_timers(engine: Arc<Engine>) {
    const OWNER: &str = "e2e-timers";
    loop {
        let now = engine.now();
        let due = engine
            .claim_due_timers(now, 64, OWNER, now + chrono::Duration::seconds(30))
            .await
            .expect("claims");
        let answers = engine.fire_batch(&due).await;
        for (timer, answer) in due.iter().zip(answers) {
            if let Fired::Stale = answer.expect("fires") {
                engine.drop_stale_timer(timer, OWNER).await.expect("drops");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.firing.abort();
    }
}

impl doorstep_store::testing::Fixture for Timed {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<Timed> {
        Timed::start(backend).await
    }
}

async fn a_yellow_card_does_not_abort_a_sign_for_sent_with_the_version_read_before_it(s: Timed) {
    s.admin()
        .put_policy(w::PutPolicyRequest {
            toml: SECONDS_POLICY.into(),
        })
        .await
        .unwrap();
    let mut c = s.tickets();
    let read = c
        .create_ticket(intake("SD-STALE-1", "lighting.stairwell"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(read.status, w::Status::Dispatched as i32);
    assert_eq!(read.lead_unit, WORKERS);

    // The yellow card on the sign-for clock, recorded by the timers after 2 s.
    let timeline = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let timeline = c
                .get_timeline(w::GetTimelineRequest {
                    id: read.id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if timeline
                .events
                .iter()
                .any(|e| e.kind == w::EventKind::Warning as i32)
            {
                return timeline;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the yellow card is recorded within seconds");
    let warned = timeline.ticket.unwrap();
    assert_eq!(warned.version, read.version + 1);

    // The unit signs for it with the version it read before the warning: it goes ahead.
    let signed = c
        .acknowledge_ticket(action(&read, WORKERS, ""))
        .await
        .expect("a yellow card changes nothing the sign-for depends on")
        .into_inner();
    assert_eq!(signed.status, w::Status::InProgress as i32);
    assert_eq!(signed.version, warned.version + 1);

    // A dispatcher urging with that same version did not see the sign-for: ABORTED.
    let refused = c
        .urge_ticket(action(&read, "", "请尽快处理"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{}", refused.message());
    let now = c
        .get_ticket(w::GetTicketRequest {
            id: read.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.version, signed.version, "nothing recorded");
}
