//! Intake owns the tickets it filed by its token's own name, not by a default every intake token of a
//! scope shares: through the real server with tokens on, on both backends.

use doorstep_engine::ErrorKind;
use doorstep_engine::access::Role;
use doorstep_proto::v1 as w;
use tonic::Code;

use crate::tokened::{Tokened, intake, req};

doorstep_store::both_backends!(a_second_intake_token_of_a_scope_does_not_read_the_firsts_tickets);

const STREET: &str = "lixia/jiefanglu";
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";

async fn a_second_intake_token_of_a_scope_does_not_read_the_firsts_tickets(s: Tokened) {
    // Two hotline integrations of one street office, both with the default name.
    let first = s
        .issue(None, Role::Intake, STREET, None)
        .await
        .expect("the first intake token");
    let second = s
        .issue(None, Role::Intake, STREET, None)
        .await
        .expect("the second intake token");
    assert_ne!(first.record.name, second.record.name);
    assert!(
        first.record.name.starts_with("intake@lixia/jiefanglu#tok_"),
        "{}",
        first.record.name
    );

    let filed = s
        .file(
            &first.secret,
            intake("OWN-1", YARD, "张女士", "13812345678"),
        )
        .await;
    assert_eq!(filed.caller.as_ref().unwrap().phone, "13812345678");

    // The first reads its own ticket back, caller and all.
    let own = s
        .get(&first.secret, &filed.id)
        .await
        .expect("its own ticket");
    let caller = own.caller.unwrap();
    assert_eq!(
        (caller.name.as_str(), caller.phone.as_str()),
        ("张女士", "13812345678")
    );

    // The second does not: not by id, not by the work-order number, not by filing it again.
    let refused = s.get(&second.secret, &filed.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    let listed = s
        .tickets()
        .list_tickets(req(
            &second.secret,
            w::ListTicketsRequest {
                external_ref: "OWN-1".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("intake looks its tickets up by number")
        .into_inner();
    assert!(listed.tickets.is_empty(), "{listed:?}");
    let again = s
        .tickets()
        .create_ticket(req(
            &second.secret,
            intake("OWN-1", YARD, "张女士", "13812345678"),
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied, "{again:?}");
    assert!(!again.message().contains("13812345678"), "{again:?}");

    // An intake token's name is its own: taking it (as intake or any other role) is refused, and
    // so is giving an intake token a name another token holds.
    for role in [Role::Intake, Role::Dispatcher] {
        let taken = s
            .issue(Some(&first.record.name), role, STREET, None)
            .await
            .unwrap_err();
        assert_eq!(taken.kind(), ErrorKind::AlreadyExists, "{taken:?}");
        assert!(taken.to_string().contains(&first.record.id), "{taken}");
    }
    s.token("解放路 dispatch", Role::Dispatcher, STREET, None)
        .await;
    s.token("解放路 dispatch", Role::Dispatcher, STREET, None)
        .await;
    let taken = s
        .issue(Some("解放路 dispatch"), Role::Intake, STREET, None)
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AlreadyExists, "{taken:?}");

    // The first still reads its ticket after all that.
    let own = s
        .get(&first.secret, &filed.id)
        .await
        .expect("its own ticket");
    assert_eq!(own.caller.unwrap().phone, "13812345678");
}
