//! Issuing tokens: the names the service records its own events under are not for tokens.

use std::sync::Arc;

use doorstep_domain::{NodeCode, SystemClock};
use doorstep_engine::tokens::{TokenRequest, issue};
use doorstep_engine::{Engine, ErrorKind, Role};
use doorstep_store::testing::TestDb;

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");

#[tokio::test]
async fn a_token_cannot_take_the_name_of_the_scheduler_or_the_local_principal() {
    let db = TestDb::sqlite("reserved-token-names").await.unwrap();
    let store = db.open().await;
    let engine = Engine::open(Arc::clone(&store), Arc::new(SystemClock))
        .await
        .unwrap();
    engine.import_district(LIXIA).await.unwrap();
    let request = |name: &str| TokenRequest {
        name: Some(name.into()),
        role: Role::Dispatcher,
        scope: Some(NodeCode::parse("lixia").unwrap()),
        unit: None,
        expires_at: None,
    };
    for reserved in [doorstep_domain::Actor::SCHEDULER, "local"] {
        let refused = issue(store.as_ref(), request(reserved), chrono::Utc::now())
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Invalid, "{refused}");
        assert!(refused.to_string().contains("reserved"), "{refused}");
    }
    assert!(store.list_tokens().await.unwrap().is_empty());
    issue(
        store.as_ref(),
        request("district office"),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
}
