//! API tokens and the audit log on both backends.

use chrono::{TimeZone, Utc};
use doorstep_store::testing::TestDb;
use doorstep_store::{AuditEntry, AuditQuery, StoreError, TokenRecord};

fn token(id: &str, hash: &str) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: format!("console {id}"),
        hash: hash.into(),
        role: "dispatcher".into(),
        scope: "lixia/jiefanglu".into(),
        unit: None,
        created_at: Utc.timestamp_millis_opt(1_790_000_000_000).unwrap(),
        expires_at: Some(Utc.timestamp_millis_opt(1_800_000_000_000).unwrap()),
        revoked_at: None,
    }
}

fn entry(id: &str, principal: &str, ticket: &str) -> AuditEntry {
    AuditEntry {
        id: id.into(),
        at: Utc.timestamp_millis_opt(1_790_000_000_123).unwrap(),
        principal: principal.into(),
        token_id: Some("t1".into()),
        ticket_id: ticket.into(),
        what: "caller name and phone via TicketService.GetTicket".into(),
    }
}

doorstep_store::both_backends!(tokens_and_audit);

async fn tokens_and_audit(db: TestDb) {
    let store = db.open().await;
    let t1 = token("t1", "aa");
    store.create_token(&t1).await.unwrap();
    store.create_token(&token("t2", "bb")).await.unwrap();
    assert!(matches!(
        store.create_token(&token("t3", "aa")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(store.token_by_hash("aa").await.unwrap(), Some(t1.clone()));
    assert_eq!(store.token_by_hash("zz").await.unwrap(), None);
    assert_eq!(store.list_tokens().await.unwrap().len(), 2);

    let at = Utc.timestamp_millis_opt(1_795_000_000_000).unwrap();
    let revoked = store.revoke_token("t1", at).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    let again = store
        .revoke_token("t1", at + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(again.revoked_at, Some(at), "the first revocation stands");
    assert!(matches!(
        store.revoke_token("nope", at).await,
        Err(StoreError::NotFound(_))
    ));

    store
        .append_audit(&[entry("a1", "p1", "x"), entry("a2", "p2", "x")])
        .await
        .unwrap();
    store.append_audit(&[entry("a3", "p1", "y")]).await.unwrap();
    let all = store
        .audit_log(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a2", "a3"]
    );
    assert_eq!(all[0], entry("a1", "p1", "x"));
    let by_ticket = store
        .audit_log(&AuditQuery {
            ticket_id: Some("x".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_ticket.len(), 2);
    let page = store
        .audit_log(&AuditQuery {
            principal: Some("p1".into()),
            after: Some("a1".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page, vec![entry("a3", "p1", "y")]);
}
