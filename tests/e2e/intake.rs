#![allow(unreachable_pub)]
//! Intake's idempotency end to end, on both backends: a retry of the same request answers the ticket
//! it registered; a different request under a reference already used is refused with ALREADY_EXISTS
//! (naming the ticket and the differing fields, never the caller's name or phone) and changes
//! nothing, also when the requests race. And the look-up by the source system's own number, scoped
//! like every list.

use std::collections::BTreeSet;

use doorstep_engine::access::Role;
use doorstep_proto::v1 as w;
use tonic::{Code, Status};

use crate::harness::Server;
use crate::tokened::{Tokened, req};

doorstep_store::both_backends!(
    a_retry_answers_its_ticket_and_a_different_request_is_refused,
    of_racing_requests_for_one_reference_exactly_one_registers,
    a_work_order_number_finds_its_tickets,
    the_look_up_is_scoped_like_every_list,
);

const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const SOUTH: &str = "lixia/jiefanglu/jiefangqiao/south";
const YARD_WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
const SOUTH_WORKERS: &str = "lixia/jiefanglu/jiefangqiao/south/workers";
/// A compound outside 解放路.
const ELSEWHERE: &str = "lixia/qianfoshan/lishanmingjun/phase-1";

/// What the resident asked, as an ALREADY_EXISTS names it.
const FIELDS: [&str; 9] = [
    "caller.name",
    "caller.phone",
    "caller.confidential",
    "category",
    "content",
    "address",
    "node",
    "occurred_at",
    "attachment_urls",
];

const NAME: &str = "张女士";
const PHONE: &str = "13812345678";

fn intake(external_ref: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: NAME.into(),
            phone: PHONE.into(),
            confidential: false,
        }),
        category: "lighting.stairwell".into(),
        content: "3号楼楼道灯不亮".into(),
        address: "3号楼2单元".into(),
        node: YARD.into(),
        level_hint: 0,
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_772_438_400,
            nanos: 123_456_789,
        }),
        attachment_urls: vec![
            "https://files.example/1.jpg".into(),
            "https://files.example/2.jpg".into(),
        ],
    }
}

fn by_ref(external_ref: &str, source: Option<w::Channel>) -> w::ListTicketsRequest {
    w::ListTicketsRequest {
        external_ref: external_ref.into(),
        source: source.map_or(0, |s| s as i32),
        ..Default::default()
    }
}

fn ids(tickets: &[w::Ticket]) -> BTreeSet<String> {
    tickets.iter().map(|t| t.id.clone()).collect()
}

/// The refusal names the ticket and every differing field, and no caller's name or phone.
fn assert_refused(e: &Status, id: &str, fields: &[&str], callers: &[&str]) {
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    let m = e.message();
    assert!(m.contains(id), "names the ticket: {m}");
    for field in fields {
        assert!(m.contains(field), "names {field}: {m}");
    }
    for secret in callers {
        assert!(!m.contains(secret), "does not echo a caller: {m}");
    }
}

async fn a_retry_answers_its_ticket_and_a_different_request_is_refused(s: Server) {
    let mut c = s.tickets().await;
    let first = c.create_ticket(intake("IN-1")).await.unwrap().into_inner();
    assert!(first.created);
    let t = first.ticket.unwrap();

    // The same request, as the edge normalises it: surrounding blanks, attachments in another order.
    let mut retry = intake("IN-1");
    retry.content = format!("  {}\n", retry.content);
    retry.caller.as_mut().unwrap().name = format!("{NAME} ");
    retry.attachment_urls.reverse();
    // The level hint is the hotline's suggestion, not what the resident asked.
    retry.level_hint = w::Level::Difficult as i32;
    for request in [intake("IN-1"), retry] {
        let again = c.create_ticket(request).await.unwrap().into_inner();
        assert!(!again.created, "a retry creates nothing");
        let again = again.ticket.unwrap();
        assert_eq!(
            (again.id.as_str(), again.version),
            (t.id.as_str(), t.version)
        );
    }

    let other_caller = ["李先生", "13900000000"];
    let variants: Vec<(&[&str], w::CreateTicketRequest)> = vec![
        (&["caller.name"], {
            let mut r = intake("IN-1");
            r.caller.as_mut().unwrap().name = other_caller[0].into();
            r
        }),
        (&["caller.phone"], {
            let mut r = intake("IN-1");
            r.caller.as_mut().unwrap().phone = other_caller[1].into();
            r
        }),
        (&["caller.confidential"], {
            let mut r = intake("IN-1");
            r.caller.as_mut().unwrap().confidential = true;
            r
        }),
        (&["caller.name", "caller.phone"], {
            let mut r = intake("IN-1");
            r.caller = None;
            r
        }),
        (&["category"], {
            let mut r = intake("IN-1");
            r.category = "sanitation.garbage".into();
            r
        }),
        (&["content"], {
            let mut r = intake("IN-1");
            r.content = "5号楼楼道灯不亮".into();
            r
        }),
        (&["address"], {
            let mut r = intake("IN-1");
            r.address = String::new();
            r
        }),
        (&["node"], {
            let mut r = intake("IN-1");
            r.node = SOUTH.into();
            r
        }),
        (&["occurred_at"], {
            let mut r = intake("IN-1");
            r.occurred_at.as_mut().unwrap().nanos += 1;
            r
        }),
        (&["occurred_at"], {
            let mut r = intake("IN-1");
            r.occurred_at = None;
            r
        }),
        (&["attachment_urls"], {
            let mut r = intake("IN-1");
            r.attachment_urls.pop();
            r
        }),
        (
            &["caller.phone", "category", "content", "attachment_urls"],
            {
                let mut r = intake("IN-1");
                r.caller.as_mut().unwrap().phone = other_caller[1].into();
                r.category = "water.supply".into();
                r.content = "二次供水水压低".into();
                r.attachment_urls.clear();
                r
            },
        ),
    ];
    for (fields, request) in variants {
        let e = c.create_ticket(request).await.unwrap_err();
        assert_refused(
            &e,
            &t.id,
            fields,
            &[NAME, PHONE, other_caller[0], other_caller[1]],
        );
        for field in FIELDS {
            assert_eq!(
                e.message().contains(field),
                fields.contains(&field),
                "{field} named exactly when it differs: {}",
                e.message()
            );
        }
    }

    // Nothing changed, and no ticket came of the refused requests.
    let now = c
        .get_ticket(w::GetTicketRequest { id: t.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now, t);
    let listed = c
        .list_tickets(by_ref("IN-1", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&listed.tickets), BTreeSet::from([t.id.clone()]));

    // The key is per source: another channel's number IN-1 is another ticket.
    let mut web = intake("IN-1");
    web.source = w::Channel::Web as i32;
    web.content = "另一个渠道的同号工单".into();
    let web = c.create_ticket(web).await.unwrap().into_inner();
    assert!(web.created);
    assert_ne!(web.ticket.unwrap().id, t.id);
}

async fn of_racing_requests_for_one_reference_exactly_one_registers(s: Server) {
    for round in 0..3 {
        let external_ref = format!("RACE-{round}");
        // Eight requests, four contents: each is identical to one other.
        let contents: Vec<String> = (0..8)
            .map(|i| format!("楼道灯不亮，第{}处", i % 4))
            .collect();
        let mut calls = Vec::new();
        for content in &contents {
            let mut c = s.tickets().await;
            let mut request = intake(&external_ref);
            request.content = content.clone();
            let content = content.clone();
            calls.push(tokio::spawn(async move {
                (content, c.create_ticket(request).await)
            }));
        }
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let winners: Vec<&w::Ticket> = answers
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok())
            .filter(|r| r.get_ref().created)
            .map(|r| r.get_ref().ticket.as_ref().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "exactly one registers: {answers:?}");
        let winner = winners[0];
        for (content, answer) in &answers {
            match answer {
                Ok(r) => {
                    let t = r.get_ref().ticket.as_ref().unwrap();
                    assert_eq!(t.id, winner.id);
                    assert_eq!(
                        &t.content, content,
                        "only the same request is answered with it"
                    );
                }
                Err(e) => {
                    assert_ne!(content, &winner.content, "the same request is a retry");
                    assert_refused(e, &winner.id, &["content"], &[NAME, PHONE]);
                }
            }
        }
        let mut c = s.tickets().await;
        let listed = c
            .list_tickets(by_ref(&external_ref, None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(&listed.tickets), BTreeSet::from([winner.id.clone()]));
    }
}

async fn a_work_order_number_finds_its_tickets(s: Server) {
    let mut c = s.tickets().await;
    let mut file = async |external_ref: &str, source: w::Channel, node: &str| {
        let mut request = intake(external_ref);
        request.source = source as i32;
        request.node = node.into();
        let r = c.create_ticket(request).await.unwrap().into_inner();
        assert!(r.created);
        r.ticket.unwrap().id
    };
    let hotline = file("WO-7", w::Channel::Hotline12345, YARD).await;
    let wechat = file("WO-7", w::Channel::Wechat, ELSEWHERE).await;
    let other = file("WO-8", w::Channel::Hotline12345, YARD).await;

    let mut found = async |request: w::ListTicketsRequest| {
        ids(&c.list_tickets(request).await.unwrap().into_inner().tickets)
    };
    assert_eq!(
        found(by_ref("WO-7", None)).await,
        BTreeSet::from([hotline.clone(), wechat.clone()]),
        "two channels share the number"
    );
    assert_eq!(
        found(by_ref(" WO-7 ", Some(w::Channel::Hotline12345))).await,
        BTreeSet::from([hotline.clone()])
    );
    assert_eq!(
        found(by_ref("WO-7", Some(w::Channel::Wechat))).await,
        BTreeSet::from([wechat.clone()])
    );
    assert!(
        found(by_ref("WO-7", Some(w::Channel::Web)))
            .await
            .is_empty()
    );
    assert!(found(by_ref("WO-9", None)).await.is_empty());
    assert!(
        found(by_ref("wo-7", None)).await.is_empty(),
        "numbers match exactly"
    );
    assert_eq!(
        found(by_ref("WO-8", None)).await,
        BTreeSet::from([other.clone()])
    );
    // The other filters still apply.
    let mut in_street = by_ref("WO-7", None);
    in_street.node = "lixia/jiefanglu".into();
    assert_eq!(found(in_street).await, BTreeSet::from([hotline.clone()]));
    let mut resolved = by_ref("WO-7", None);
    resolved.statuses = vec![w::Status::Resolved as i32];
    assert!(found(resolved).await.is_empty());
    // A source alone lists that channel's tickets.
    assert_eq!(
        found(by_ref("", Some(w::Channel::Wechat))).await,
        BTreeSet::from([wechat.clone()])
    );

    let e = c
        .list_tickets(by_ref(&"9".repeat(129), None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("external_ref:"), "{}", e.message());
    let e = c
        .list_tickets(w::ListTicketsRequest {
            source: 99,
            ..by_ref("WO-7", None)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("source:"), "{}", e.message());
}

async fn the_look_up_is_scoped_like_every_list(s: Tokened) {
    let hotline = s.token("hotline", Role::Intake, "lixia", None).await;
    let file = async |source: w::Channel, node: &str| {
        let mut request = intake("WO-1");
        request.source = source as i32;
        request.node = node.into();
        s.tickets()
            .create_ticket(req(&hotline, request))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap()
            .id
    };
    let at_yard = file(w::Channel::Hotline12345, YARD).await;
    let elsewhere = file(w::Channel::Wechat, ELSEWHERE).await;

    let found = async |token: &str| {
        ids(&s
            .tickets()
            .list_tickets(req(token, by_ref("WO-1", None)))
            .await
            .unwrap()
            .into_inner()
            .tickets)
    };
    let admin = s.token("admin", Role::Admin, "lixia", None).await;
    assert_eq!(
        found(&admin).await,
        BTreeSet::from([at_yard.clone(), elsewhere.clone()])
    );
    let jiefanglu = s
        .token(
            "jiefanglu console",
            Role::Dispatcher,
            "lixia/jiefanglu",
            None,
        )
        .await;
    assert_eq!(found(&jiefanglu).await, BTreeSet::from([at_yard.clone()]));
    let qianfoshan = s
        .token(
            "qianfoshan supervision",
            Role::Supervisor,
            "lixia/qianfoshan",
            None,
        )
        .await;
    assert_eq!(
        found(&qianfoshan).await,
        BTreeSet::from([elsewhere.clone()])
    );
    // A handling unit finds the tickets it leads, and not another unit's in the same community.
    let yard = s
        .token("yard-129 workers", Role::Unit, YARD, Some(YARD_WORKERS))
        .await;
    assert_eq!(found(&yard).await, BTreeSet::from([at_yard.clone()]));
    let south = s
        .token("south workers", Role::Unit, SOUTH, Some(SOUTH_WORKERS))
        .await;
    assert!(found(&south).await.is_empty());

    // A retry by another principal is not answered with the ticket, nor told how it differs.
    let other_hotline = s
        .token("another hotline", Role::Intake, "lixia", None)
        .await;
    let mut different = intake("WO-1");
    different.content = "另一件事".into();
    let e = s
        .tickets()
        .create_ticket(req(&other_hotline, different))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(!e.message().contains(&at_yard), "{}", e.message());
}
