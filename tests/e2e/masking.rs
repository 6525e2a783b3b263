//! Roles that see callers masked (supervisors, reporters) read the free text that may name them
//! masked too (content, notes, resolutions, callback comments) and the address only to street level,
//! by every read: GetTicket, ListTickets, GetTimeline, WatchEvents, ExportEvents. A handling unit on
//! a confidential ticket reads the free text masked and the address as given. Through the real server
//! with tokens on, on both backends.

use doorstep_engine::access::Role;
use doorstep_proto::v1 as w;

use crate::tokened::{Tokened, intake, read_until, req};

doorstep_store::both_backends!(free_text_and_address_are_masked_for_roles_that_see_callers_masked);

const STREET: &str = "lixia/jiefanglu";
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
const NAME: &str = "张女士";
const PHONE: &str = "13812345678";
const CONTENT: &str = "张女士反映3号楼楼道灯不亮，请回电13812345678或0531-86012345";
const CONTENT_MASKED: &str = "张**反映3号楼楼道灯不亮，请回电138****5678或053*****2345";
const ADDRESS: &str = "解放路129号院3号楼2单元501室";
const STREET_LEVEL: &str = "解放路街道 解放桥社区";
const NOTE: &str = "已联系张女士，电话13812345678";
const NOTE_MASKED: &str = "已联系张**，电话138****5678";
const RESOLUTION: &str = "已修复，张女士确认";
const RESOLUTION_MASKED: &str = "已修复，张**确认";
const COMMENT: &str = "张女士满意，回访电话 138 1234 5678";
const COMMENT_MASKED: &str = "张**满意，回访电话 138****5678";

/// The free text of the events, as read.
fn texts(events: &[w::Event]) -> Vec<String> {
    events
        .iter()
        .flat_map(|e| [e.reason.clone(), e.text.clone()])
        .filter(|t| !t.is_empty())
        .collect()
}

/// Nothing of the caller as given, and each masked text there.
fn assert_masked(what: &str, texts: &[String]) {
    for t in texts {
        assert!(!t.contains(NAME) && !t.contains(PHONE), "{what}: {t}");
        assert!(!t.contains("86012345"), "{what}: {t}");
    }
    for masked in [NOTE_MASKED, RESOLUTION_MASKED, COMMENT_MASKED] {
        assert!(
            texts.iter().any(|t| t == masked),
            "{what}: {masked} in {texts:?}"
        );
    }
}

fn assert_masked_ticket(what: &str, t: &w::Ticket) {
    assert_eq!(t.content, CONTENT_MASKED, "{what}");
    assert_eq!(t.address, STREET_LEVEL, "{what}");
    let caller = t.caller.as_ref().unwrap();
    assert_eq!(
        (caller.name.as_str(), caller.phone.as_str()),
        ("张**", "138****5678"),
        "{what}"
    );
}

async fn free_text_and_address_are_masked_for_roles_that_see_callers_masked(s: Tokened) {
    let dispatcher = s
        .token("解放路 dispatch", Role::Dispatcher, STREET, None)
        .await;
    let supervisor = s.token("解放路 督办", Role::Supervisor, STREET, None).await;
    let reporter = s
        .token("解放路 reports", Role::Reporter, STREET, None)
        .await;
    let workers = s.token("129号院", Role::Unit, YARD, Some(WORKERS)).await;
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let mut t = s.tickets();

    // Elsewhere, first: watches start after this ticket's events.
    let opening = s.opening(&root).await;
    // A watch open before anything happens reads what follows from the server's feed.
    let mut live = s.watch(&supervisor, opening).await;

    let mut request = intake("MASK-1", YARD, NAME, PHONE);
    request.content = CONTENT.into();
    request.address = ADDRESS.into();
    let filed = s.file(&dispatcher, request.clone()).await;
    assert_eq!(filed.lead_unit, WORKERS);
    let noted = t
        .add_note(req(&dispatcher, crate::action(&filed, "", NOTE)))
        .await
        .expect("a note")
        .into_inner();
    let signed = t
        .acknowledge_ticket(req(&workers, crate::action(&noted, WORKERS, "")))
        .await
        .expect("signed for")
        .into_inner();
    let resolved = t
        .resolve_ticket(req(
            &workers,
            w::ResolveTicketRequest {
                id: signed.id.clone(),
                version: signed.version,
                resolution: RESOLUTION.into(),
            },
        ))
        .await
        .expect("resolved")
        .into_inner();
    let called_back = t
        .record_callback(req(
            &dispatcher,
            w::RecordCallbackRequest {
                id: resolved.id.clone(),
                version: resolved.version,
                satisfaction: w::Satisfaction::Satisfied as i32,
                comment: COMMENT.into(),
                matter_solved: true,
            },
        ))
        .await
        .expect("called back")
        .into_inner();

    // The dispatcher sees everything as given.
    let seen = s.get(&dispatcher, &filed.id).await.unwrap();
    assert_eq!(
        (seen.content.as_str(), seen.address.as_str()),
        (CONTENT, ADDRESS)
    );
    let timeline = s.timeline(&dispatcher, &filed.id).await;
    let given = texts(&timeline.events);
    for text in [NOTE, RESOLUTION, COMMENT] {
        assert!(given.iter().any(|t| t == text), "{text} in {given:?}");
    }

    // The supervisor, by every read.
    assert_masked_ticket("GetTicket", &s.get(&supervisor, &filed.id).await.unwrap());
    let listed = t
        .list_tickets(req(&supervisor, w::ListTicketsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let [one] = &listed.tickets[..] else {
        panic!("{listed:?}")
    };
    assert_masked_ticket("ListTickets", one);
    let timeline = s.timeline(&supervisor, &filed.id).await;
    assert_masked_ticket("GetTimeline", timeline.ticket.as_ref().unwrap());
    assert_masked("GetTimeline", &texts(&timeline.events));
    let last = timeline.events.last().map(|e| e.seq).expect("events");
    let watched = s.watched(&supervisor, opening, last).await;
    assert_masked("WatchEvents", &texts(&watched));
    let watched = read_until(&mut live, last).await;
    assert_masked("WatchEvents from the feed", &texts(&watched));

    // The reporter's export.
    let exported = s.exported(&reporter).await;
    assert!(exported.iter().any(|e| e.ticket_id == filed.id));
    assert_masked("ExportEvents", &texts(&exported));

    // A confidential ticket, seen by its handling unit: the caller hidden, the free text masked, the
    // address as given (the unit has to find the place).
    let mut confidential = request;
    confidential.external_ref = "MASK-2".into();
    confidential.caller.as_mut().unwrap().confidential = true;
    let secret = s.file(&dispatcher, confidential).await;
    let seen = s.get(&workers, &secret.id).await.unwrap();
    assert_eq!(seen.content, CONTENT_MASKED);
    assert_eq!(seen.address, ADDRESS);
    let caller = seen.caller.unwrap();
    assert!(caller.name.is_empty() && caller.phone.is_empty());
    // The unit's own ticket that is not confidential reads as given.
    let seen = s.get(&workers, &called_back.id).await.unwrap();
    assert_eq!(
        (seen.content.as_str(), seen.address.as_str()),
        (CONTENT, ADDRESS)
    );
}
