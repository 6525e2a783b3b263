//! `doorstep serve` killed with SIGKILL in the middle of intake, as a crash or an OOM kill would, on
//! one SQLite file and on PostgreSQL: several hotline clients file tickets without pause; once enough
//! are acknowledged the server is killed mid-call, and started again on the same database. Every
//! ticket whose CreateTicket was answered OK is there, under its work-order number; no number has
//! two tickets; and filing every number again (the hotline retrying what it never heard back about)
//! creates only what the crash lost, still one ticket per number.

mod processes;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use doorstep_proto::v1 as w;
use doorstep_store::testing::{TempDir, TestDb};

use processes::{Process, first_boot, intake, tickets, until};

doorstep_store::both_backends!(serve_killed_under_intake_load_keeps_every_acknowledged_ticket);

/// Hotline clients filing at once, each on a connection of its own.
const CLIENTS: usize = 4;
/// The server is killed once this many tickets are acknowledged (the clients still filing).
const KILL_AFTER: usize = 150;
/// How long intake may take to reach that (a loaded 2-core machine; PostgreSQL fsyncs off).
const INTAKE_WAIT: Duration = Duration::from_secs(120);
/// Each call's bound: a killed server answers at once, a hung one must not hang the test.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

const POLICY: &str = "# The crash test's policy: the defaults.\nacknowledge_within = \"1h\"\n";

/// What the clients did: work-order numbers sent, and those answered OK with their ticket.
#[derive(Debug, Default)]
struct Intake {
    sent: BTreeSet<String>,
    acknowledged: BTreeMap<String, String>,
}

async fn serve_killed_under_intake_load_keeps_every_acknowledged_ticket(db: TestDb) {
    let dir = TempDir::new("doorstep-crash").expect("a temporary folder");
    first_boot(&db.url, dir.path(), POLICY).await;
    let serve = Process::serve("serve", dir.path(), &db.url, &[]).await;

    let tally = Arc::new(Mutex::new(Intake::default()));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let mut client = tickets(&serve.addr).await;
        let tally = Arc::clone(&tally);
        clients.push(tokio::spawn(async move {
            for i in 0.. {
                let external_ref = format!("CRASH-{c}-{i}");
                tally.lock().unwrap().sent.insert(external_ref.clone());
                let answer =
                    tokio::time::timeout(CALL_TIMEOUT, client.create_ticket(intake(&external_ref)))
                        .await;
                match answer {
                    Ok(Ok(created)) => {
                        let created = created.into_inner();
                        assert!(created.created, "{external_ref} is new");
                        tally
                            .lock()
                            .unwrap()
                            .acknowledged
                            .insert(external_ref, created.ticket.unwrap().id);
                    }
                    // The server is gone: this client's hotline waits for it.
                    Ok(Err(_)) | Err(_) => return,
                }
            }
        }));
    }
    until("enough acknowledged tickets", INTAKE_WAIT, || {
        let n = tally.lock().unwrap().acknowledged.len();
        async move { (n >= KILL_AFTER).then_some(()) }
    })
    .await;
    serve.kill_9().await;
    for client in clients {
        tokio::time::timeout(CALL_TIMEOUT * 2, client)
            .await
            .expect("every client notices the server is gone")
            .expect("a client that did not panic");
    }
    let Intake { sent, acknowledged } = std::mem::take(&mut *tally.lock().unwrap());
    assert!(acknowledged.len() >= KILL_AFTER);
    eprintln!(
        "{:?}: {} tickets acknowledged before the kill, {} calls unanswered",
        db.backend,
        acknowledged.len(),
        sent.len() - acknowledged.len()
    );

    // Started again on the same database.
    let serve = Process::serve("serve-again", dir.path(), &db.url, &[]).await;
    let mut client = tickets(&serve.addr).await;
    for (external_ref, id) in &acknowledged {
        let t = client
            .get_ticket(w::GetTicketRequest { id: id.clone() })
            .await
            .unwrap_or_else(|e| panic!("acknowledged ticket {id} ({external_ref}) lost: {e}"))
            .into_inner();
        assert_eq!(&t.external_ref, external_ref);
    }
    let stored = db.scalar("SELECT COUNT(*) FROM tickets").await;
    let numbers = db
        .scalar("SELECT COUNT(DISTINCT external_ref) FROM tickets")
        .await;
    assert_eq!(stored, numbers, "no work-order number has two tickets");
    assert!(
        stored as usize >= acknowledged.len() && stored as usize <= sent.len(),
        "{stored} tickets for {} acknowledged of {} sent",
        acknowledged.len(),
        sent.len()
    );

    // The hotline files every number again: the acknowledged ones are found, not filed twice.
    for external_ref in &sent {
        let again = client
            .create_ticket(intake(external_ref))
            .await
            .unwrap_or_else(|e| panic!("{external_ref} again: {e}"))
            .into_inner();
        if let Some(id) = acknowledged.get(external_ref) {
            assert!(!again.created, "{external_ref} was filed twice");
            assert_eq!(&again.ticket.unwrap().id, id);
        }
        let listed = client
            .list_tickets(w::ListTicketsRequest {
                external_ref: external_ref.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.tickets.len(), 1, "{external_ref}");
    }
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tickets").await,
        sent.len() as i64,
        "one ticket per number sent"
    );
    serve
        .terminate()
        .await
        .expect("the restarted serve exits cleanly on SIGTERM");
}
