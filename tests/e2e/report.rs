//! ReportService end to end: the SLA report and the resumable export over real gRPC, both backends.

use doorstep_proto::v1 as w;
use doorstep_proto::v1::report_service_client::ReportServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::Server;

doorstep_store::both_backends!(
    the_sla_report_counts_what_happened,
    an_export_resumed_from_its_last_seq_loses_and_repeats_nothing,
);

const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
const PHASE_1: &str = "lixia/qianfoshan/lishanmingjun/phase-1";

fn reports(s: &Server) -> ReportServiceClient<Channel> {
    ReportServiceClient::new(s.channel.clone())
}

fn intake(external_ref: &str, node: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "张女士".into(),
            phone: "13800000000".into(),
            confidential: false,
        }),
        category: "lighting.stairwell".into(),
        content: "楼道灯不亮".into(),
        node: node.into(),
        ..Default::default()
    }
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

async fn the_sla_report_counts_what_happened(s: Server) {
    let mut tickets = s.tickets().await;
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    // Six tickets at the compound: four signed for, three of those resolved, two called back (one
    // satisfied and solved, one dissatisfied); two at another street office, left alone.
    let mut filed = Vec::new();
    for i in 0..6 {
        let t = tickets
            .create_ticket(intake(&format!("R-{i}"), YARD))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap();
        filed.push(t);
    }
    for i in 0..2 {
        tickets
            .create_ticket(intake(&format!("Q-{i}"), PHASE_1))
            .await
            .unwrap();
    }
    for (i, t) in filed.iter().enumerate().take(4) {
        let t = tickets
            .acknowledge_ticket(crate::action(t, WORKERS, ""))
            .await
            .unwrap()
            .into_inner();
        if i == 3 {
            continue;
        }
        let t = tickets
            .resolve_ticket(w::ResolveTicketRequest {
                id: t.id.clone(),
                version: t.version,
                resolution: "换了灯泡".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if i < 2 {
            tickets
                .record_callback(w::RecordCallbackRequest {
                    id: t.id.clone(),
                    version: t.version,
                    satisfaction: if i == 0 {
                        w::Satisfaction::Satisfied
                    } else {
                        w::Satisfaction::Dissatisfied
                    } as i32,
                    matter_solved: i == 0,
                    comment: String::new(),
                })
                .await
                .unwrap();
        }
    }
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let ask = |node: &str, group_by: w::GroupBy| w::SlaReportRequest {
        node: node.into(),
        from: ts(start),
        to: ts(end),
        group_by: group_by as i32,
        period: 0,
    };
    let mut client = reports(&s);
    let report = client
        .get_sla_report(ask("lixia/jiefanglu", w::GroupBy::Unspecified))
        .await
        .unwrap()
        .into_inner();
    assert!(report.as_of.is_some());
    let [row] = &report.rows[..] else {
        panic!("{report:?}")
    };
    assert_eq!(row.key, "lixia/jiefanglu");
    assert_eq!(
        (
            row.received,
            row.dispatched,
            row.resolved,
            row.resolved_on_time
        ),
        (6, 6, 3, 3)
    );
    assert_eq!(
        (row.callbacks, row.callbacks_satisfied, row.callbacks_solved),
        (2, 1, 1)
    );
    assert_eq!(
        (row.on_time_rate, row.satisfaction_rate, row.resolution_rate),
        (1.0, 0.5, 0.5)
    );
    assert_eq!(
        (row.overdue_now, row.escalations, row.repeat_requests),
        (0, 0, 0)
    );
    assert!(row.acknowledged_on_time == 4 && (row.acknowledge_rate - 4.0 / 6.0).abs() < 1e-12);
    assert!(row.resolve_seconds_p50 >= 0.0 && row.resolve_seconds_p90 >= row.resolve_seconds_p50);
    // Nothing a year before: the change is NaN, not infinity.
    assert_eq!(row.received_year_before, 0);
    assert!(row.received_change.is_nan());

    let by_child = client
        .get_sla_report(ask("lixia", w::GroupBy::ChildNode))
        .await
        .unwrap()
        .into_inner();
    let received: Vec<(&str, i64)> = by_child
        .rows
        .iter()
        .map(|r| (r.key.as_str(), r.received))
        .collect();
    assert!(received.contains(&("lixia/jiefanglu", 6)), "{received:?}");
    assert!(received.contains(&("lixia/qianfoshan", 2)), "{received:?}");
    assert!(received.contains(&("lixia/zhiyuan", 0)), "{received:?}");
    let by_level = client
        .get_sla_report(ask("lixia", w::GroupBy::Level))
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = by_level.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["ROUTINE", "DIFFICULT", "HARD", "MAJOR_RISK"]);
    assert!(by_level.rows[3].on_time_rate.is_nan());

    // Bad requests: the code, and the field named.
    let bad = |mut r: w::SlaReportRequest, edit: fn(&mut w::SlaReportRequest)| {
        edit(&mut r);
        r
    };
    let base = ask("lixia", w::GroupBy::Unspecified);
    for (request, code, field) in [
        (
            bad(base.clone(), |r| r.node.clear()),
            Code::InvalidArgument,
            "node",
        ),
        (
            bad(base.clone(), |r| r.node = "lixia/nowhere".into()),
            Code::NotFound,
            "lixia/nowhere",
        ),
        (
            bad(base.clone(), |r| r.from = None),
            Code::InvalidArgument,
            "from",
        ),
        (
            bad(base.clone(), |r| r.to = r.from),
            Code::InvalidArgument,
            "to",
        ),
        (
            bad(base.clone(), |r| r.group_by = w::GroupBy::Period as i32),
            Code::InvalidArgument,
            "period",
        ),
        (
            bad(base.clone(), |r| r.period = w::Period::Week as i32),
            Code::InvalidArgument,
            "period",
        ),
        (
            bad(base.clone(), |r| r.group_by = 42),
            Code::InvalidArgument,
            "group_by",
        ),
        (
            bad(base.clone(), |r| r.node = "bad code!".into()),
            Code::InvalidArgument,
            "node",
        ),
    ] {
        let e = client.get_sla_report(request.clone()).await.unwrap_err();
        assert_eq!(e.code(), code, "{request:?}: {e:?}");
        assert!(e.message().contains(field), "{request:?}: {}", e.message());
    }
    let weekly = client
        .get_sla_report(bad(base, |r| {
            r.group_by = w::GroupBy::Period as i32;
            r.period = w::Period::Day as i32;
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(weekly.rows.iter().map(|r| r.received).sum::<i64>(), 8);
}

async fn export(
    client: &mut ReportServiceClient<Channel>,
    node: &str,
    after_seq: i64,
    limit: i32,
) -> Vec<w::Event> {
    let mut stream = client
        .export_events(w::ExportEventsRequest {
            node: node.into(),
            after_seq,
            limit,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(event) = stream.next().await {
            out.push(event.unwrap());
        }
    })
    .await
    .expect("the export ends within 30 s");
    out
}

async fn an_export_resumed_from_its_last_seq_loses_and_repeats_nothing(s: Server) {
    let mut tickets = s.tickets().await;
    for i in 0..40 {
        let node = if i % 4 == 0 { PHASE_1 } else { YARD };
        tickets
            .create_ticket(intake(&format!("E-{i}"), node))
            .await
            .unwrap();
    }
    let mut client = reports(&s);
    let all = export(&mut client, "", 0, 0).await;
    assert!(all.len() >= 80, "{}", all.len());
    assert!(all.windows(2).all(|p| p[0].seq < p[1].seq));

    // Small pages, resumed from the last seq seen, while more tickets arrive.
    let writer = {
        let mut tickets = s.tickets().await;
        tokio::spawn(async move {
            for i in 0..30 {
                tickets
                    .create_ticket(intake(&format!("L-{i}"), YARD))
                    .await
                    .unwrap();
            }
        })
    };
    let mut seen: Vec<w::Event> = Vec::new();
    let mut after = 0;
    loop {
        let page = export(&mut client, "", after, 7).await;
        assert!(page.len() <= 7);
        let Some(last) = page.last() else {
            if writer.is_finished() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        after = last.seq;
        seen.extend(page);
    }
    writer.await.unwrap();
    seen.extend(export(&mut client, "", after, 0).await);
    let again = export(&mut client, "", 0, 0).await;
    let seqs = |events: &[w::Event]| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&seen),
        seqs(&again),
        "a resumed export equals one export"
    );
    assert_eq!(seen, again);
    assert!(again.len() >= all.len() + 60);

    // A subtree: only its tickets' events.
    let street = export(&mut client, "lixia/qianfoshan", 0, 0).await;
    assert_eq!(
        street
            .iter()
            .filter(|e| e.kind == w::EventKind::Created as i32)
            .count(),
        10
    );
    let ids: std::collections::BTreeSet<&str> =
        street.iter().map(|e| e.ticket_id.as_str()).collect();
    assert_eq!(ids.len(), 10);

    for (request, field) in [
        (
            w::ExportEventsRequest {
                after_seq: -1,
                ..Default::default()
            },
            "after_seq",
        ),
        (
            w::ExportEventsRequest {
                limit: -5,
                ..Default::default()
            },
            "limit",
        ),
        (
            w::ExportEventsRequest {
                node: "bad code!".into(),
                ..Default::default()
            },
            "node",
        ),
    ] {
        let e = client.export_events(request).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(field), "{}", e.message());
    }

    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let status = HealthClient::new(s.channel.clone())
        .check(HealthCheckRequest {
            service: "doorstep.v1.ReportService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}
