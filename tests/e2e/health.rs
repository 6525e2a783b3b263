#![allow(unreachable_pub)]
//! Health, end to end: the overall service (`""`) is liveness and stays SERVING; each doorstep
//! service is readiness: NOT_SERVING as soon as shutdown begins, and while the database does not
//! answer (a throwaway PostgreSQL cluster stopped under the server, then started again).

use std::sync::Arc;
use std::time::{Duration, Instant};

use doorstep_domain::SystemClock;
use doorstep_server::health::READINESS_SERVICES;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::harness::{Server, lixia_engine_over, own_postgres, serve_without_tokens};

doorstep_store::both_backends!(readiness_goes_not_serving_as_the_drain_begins);

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

async fn check(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let status = health
        .check(request(service))
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap()
}

/// The next status a watch sends, or `None` once it ended.
async fn next(
    stream: &mut tonic::Streaming<HealthCheckResponse>,
    service: &str,
) -> Option<ServingStatus> {
    let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap_or_else(|_| panic!("the watch of {service:?} said nothing for 5 s"));
    match message {
        None => None,
        Some(Ok(m)) => Some(ServingStatus::try_from(m.status).unwrap()),
        Some(Err(e)) => panic!("the watch of {service:?} failed: {e:?}"),
    }
}

/// Watches opened before the shutdown see every doorstep service turn NOT_SERVING, and the overall
/// service never does; then every watch ends and the server stops (no watch holds the drain up).
async fn readiness_goes_not_serving_as_the_drain_begins(mut s: Server) {
    let mut health = HealthClient::new(s.channel.clone());
    assert_eq!(
        health
            .check(request("no.such.Service"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let mut watches = Vec::new();
    for service in std::iter::once("").chain(READINESS_SERVICES) {
        assert_eq!(check(&mut health, service).await, ServingStatus::Serving);
        let mut stream = health.watch(request(service)).await.unwrap().into_inner();
        assert_eq!(
            next(&mut stream, service).await,
            Some(ServingStatus::Serving),
            "the watch of {service:?} starts with the status"
        );
        watches.push((service, stream));
    }

    let running = s.running.take().expect("running");
    running.begin_shutdown();
    for (service, stream) in &mut watches {
        let mut seen = Vec::new();
        while let Some(status) = next(stream, service).await {
            seen.push(status);
        }
        if service.is_empty() {
            assert_eq!(seen, [], "liveness stays SERVING while draining");
        } else {
            assert_eq!(
                seen,
                [ServingStatus::NotServing],
                "{service:?} while draining"
            );
        }
    }
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("the server stops once the watches ended")
        .expect("a clean stop");
}

/// Polls `service` until it answers `wanted`; how long that took.
async fn until(
    health: &mut HealthClient<Channel>,
    service: &str,
    wanted: ServingStatus,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = check(health, service).await;
        if status == wanted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{service:?} still {status:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PostgreSQL stopped under a running server: within a few seconds every doorstep service reports
/// NOT_SERVING while the overall service stays SERVING (the process is alive: restarting it would
/// not help); started again, they report SERVING again. Its own cluster, since stopping the shared
/// one would fail the tests running beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    let Some((cluster, store)) = own_postgres("health").await else {
        return;
    };
    let engine = lixia_engine_over(store, Arc::new(SystemClock)).await;
    let (running, channel) = serve_without_tokens(engine).await;
    let mut health = HealthClient::new(channel);
    for service in std::iter::once("").chain(READINESS_SERVICES) {
        assert_eq!(check(&mut health, service).await, ServingStatus::Serving);
    }

    // A probe every 2 s, failing within 2 s: NOT_SERVING within about 4 s of the stop.
    let bound = Duration::from_secs(10);
    cluster.stop_with("fast").expect("pg_ctl stop");
    let down = until(
        &mut health,
        READINESS_SERVICES[0],
        ServingStatus::NotServing,
        bound,
    )
    .await;
    for service in READINESS_SERVICES {
        assert_eq!(check(&mut health, service).await, ServingStatus::NotServing);
    }
    assert_eq!(check(&mut health, "").await, ServingStatus::Serving);

    cluster.start_again().expect("pg_ctl start");
    let up = until(
        &mut health,
        READINESS_SERVICES[0],
        ServingStatus::Serving,
        bound,
    )
    .await;
    for service in std::iter::once("").chain(READINESS_SERVICES) {
        assert_eq!(check(&mut health, service).await, ServingStatus::Serving);
    }
    eprintln!(
        "readiness: NOT_SERVING {down:?} after the database stopped, SERVING {up:?} after it started again"
    );
    running.shutdown().await.unwrap();
    cluster.stop();
}
