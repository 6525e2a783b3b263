//! What is sent: the webhook body and its signature, the SMS text and the gateway request. Nothing
//! here reads a caller's name or phone: the body speaks of the ticket and the event only, and the
//! phone an SMS goes to is a board member's, handed to the gateway and to no log.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use doorstep_domain::{Change, Level, Person, Ticket};
use doorstep_store::StoredEvent;
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};

use crate::rules::Sms;

fn instant(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The event as a webhook tells it: the common fields, then what its kind carries that a receiver
/// acts on (clocks, levels, the unit concerned). A reason is typed by a person and may quote the
/// caller: the caller's name and any long run of digits in it are masked, as for a supervisor.
pub fn event_json(e: &StoredEvent, caller_name: &str) -> Value {
    let mut m = Map::new();
    m.insert("seq".into(), json!(e.seq));
    m.insert("kind".into(), json!(e.event.change.kind()));
    m.insert("ticket_id".into(), json!(e.ticket_id.as_str()));
    m.insert("at".into(), instant(e.event.at));
    m.insert("actor".into(), json!(e.event.actor.as_str()));
    m.insert("status_after".into(), json!(e.event.status_after.as_str()));
    let reason = match &e.event.change {
        Change::DispatchedTo { reason, unit, .. } => {
            m.insert("unit".into(), json!(unit.as_str()));
            Some(reason)
        }
        Change::ReturnedByUnit { reason, unit } => {
            m.insert("unit".into(), json!(unit.as_str()));
            Some(reason)
        }
        Change::Acknowledged { unit } | Change::ReportedIn { unit } => {
            m.insert("unit".into(), json!(unit.as_str()));
            None
        }
        Change::SuspendedClock { reason, .. }
        | Change::ResumedClock { reason, .. }
        | Change::ExtensionRequested { reason, .. }
        | Change::ExtensionApproved { reason, .. }
        | Change::ExtensionRejected { reason, .. }
        | Change::WhistleBlown { reason, .. }
        | Change::Urged { reason }
        | Change::Supervised { reason }
        | Change::MergedInto { reason, .. }
        | Change::CancelledBy { reason }
        | Change::ClosedTicket { reason }
        | Change::Retimed { reason, .. } => Some(reason),
        Change::Warning {
            clock,
            unit,
            due_at,
        }
        | Change::Breached {
            clock,
            unit,
            due_at,
        } => {
            m.insert("clock".into(), json!(clock.as_str()));
            if let Some(unit) = unit {
                m.insert("unit".into(), json!(unit.as_str()));
            }
            m.insert("due_at".into(), instant(*due_at));
            None
        }
        Change::Escalated {
            from,
            to,
            reason,
            dispatch,
            ..
        } => {
            m.insert("from".into(), json!(from.as_str()));
            m.insert("to".into(), json!(to.as_str()));
            if let Some(d) = dispatch {
                m.insert("unit".into(), json!(d.unit.as_str()));
            }
            Some(reason)
        }
        Change::Reclassified {
            from, to, reason, ..
        } => {
            m.insert("from".into(), json!(from.as_str()));
            m.insert("to".into(), json!(to.as_str()));
            Some(reason)
        }
        Change::ReviewMissed { due_at, next } => {
            m.insert("due_at".into(), instant(*due_at));
            m.insert("next_review_at".into(), instant(next.due_at));
            None
        }
        Change::Created { .. }
        | Change::ResolvedByUnit { .. }
        | Change::CallbackRecorded { .. }
        | Change::Reopened { .. }
        | Change::NoteAdded { .. } => None,
    };
    if let Some(reason) = reason {
        m.insert(
            "reason".into(),
            json!(doorstep_engine::access::mask_text(reason, caller_name)),
        );
    }
    Value::Object(m)
}

/// The ticket as a webhook tells it: no caller, no content, no address.
pub fn ticket_json(t: &Ticket) -> Value {
    let mut deadlines = Map::new();
    if let Some(a) = &t.acknowledge {
        deadlines.insert("acknowledge".into(), instant(a.due_at));
    }
    if let Some(due) = t.resolve_due_at() {
        deadlines.insert("resolve".into(), instant(due));
    }
    if let Some(r) = &t.review {
        deadlines.insert("review".into(), instant(r.due_at));
    }
    json!({
        "id": t.id.as_str(),
        "external_ref": t.intake.external_ref,
        "source": t.intake.source.as_str(),
        "level": t.level.as_str(),
        "status": t.status.as_str(),
        "node": t.intake.node.as_str(),
        "lead_unit": t.lead_unit.as_ref().map(|u| u.as_str()),
        "breached": t.is_breached(),
        "deadlines": deadlines,
    })
}

/// The webhook body: compact JSON, keys in a fixed (sorted) order.
pub fn webhook_body(delivery: &str, webhook: &str, e: &StoredEvent, t: &Ticket) -> String {
    json!({
        "delivery": delivery,
        "webhook": webhook,
        "event": event_json(e, &t.intake.caller.name),
        "ticket": ticket_json(t),
    })
    .to_string()
}

/// `Doorstep-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The built-in Chinese text of an event kind, where there is one.
pub fn default_template(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "WARNING" => "【12345】工单{ref}（{level}）即将超期，办理期限{deadline}，请抓紧办理。",
        "BREACHED" => "【12345】工单{ref}（{level}）已超期，办理期限{deadline}，请立即办理。",
        "ESCALATED" => {
            "【12345】工单{ref}超期未办结，已升级为{level}，新办理期限{deadline}，请立即接办。"
        }
        "REVIEW_MISSED" => {
            "【12345】重大风险隐患工单{ref}未按期报告进展，下次报告期限{deadline}，请包案领导督办。"
        }
        "DISPATCHED_TO" => {
            "【12345】工单{ref}（{level}）已派至贵单位，办理期限{deadline}，请及时签收。"
        }
        _ => return None,
    })
}

/// A level's Chinese name.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Routine => "普通事项",
        Level::Difficult => "疑难问题",
        Level::Hard => "棘手难题",
        Level::MajorRisk => "重大风险隐患",
    }
}

/// The deadline an SMS names: the running resolve deadline, else the next review, else the
/// sign-for deadline; in the district's time zone.
fn deadline_text(t: &Ticket, tz: Tz) -> String {
    let due = t
        .resolve_due_at()
        .or(t.review.as_ref().map(|r| r.due_at))
        .or(t.acknowledge.as_ref().map(|a| a.due_at));
    match due {
        Some(due) => due.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        None => "无".to_owned(),
    }
}

/// The SMS text for `kind` on `t`.
pub fn sms_text(rule: &Sms, kind: &str, t: &Ticket, tz: Tz) -> Option<String> {
    let template = rule
        .templates
        .get(kind)
        .map(String::as_str)
        .or_else(|| default_template(kind))?;
    Some(
        template
            .replace("{ref}", &t.intake.external_ref)
            .replace("{id}", t.id.as_str())
            .replace("{level}", level_name(t.level))
            .replace("{deadline}", &deadline_text(t, tz))
            .replace("{kind}", kind)
            .replace("{node}", t.intake.node.as_str()),
    )
}

/// The board members an SMS goes to: for each role the rule names at the ticket's level, the
/// people with that role on the nearest board (the ticket's node first, then up the tree); for the
/// case owner role, the ticket's named case owner when it has one.
pub fn recipients<'d>(
    rule: &Sms,
    t: &Ticket,
    district: &'d doorstep_domain::District,
) -> Vec<&'d Person> {
    let Some(roles) = rule.recipients.get(&t.level) else {
        return Vec::new();
    };
    let mut ancestry = district.jurisdiction.ancestry(&t.intake.node);
    // Nearest first.
    ancestry.reverse();
    let mut out: Vec<&Person> = Vec::new();
    for role in roles {
        let role = role.trim();
        for node in &ancestry {
            let mut found: Vec<&Person> = node
                .board
                .iter()
                .filter(|p| p.role.trim().eq_ignore_ascii_case(role))
                .collect();
            if found.is_empty() {
                continue;
            }
            if let Some(owner) = &t.case_owner
                && found.iter().any(|p| &p.name == owner)
            {
                found.retain(|p| &p.name == owner);
            }
            for p in found {
                if !p.phone.trim().is_empty() && !out.iter().any(|q| q.phone == p.phone) {
                    out.push(p);
                }
            }
            break;
        }
    }
    out
}

/// The value of a placeholder in the gateway's body, escaped for what the body is.
fn escaped(value: &str, json: bool, form: bool) -> String {
    if json {
        let quoted = Value::String(value.to_owned()).to_string();
        quoted[1..quoted.len() - 1].to_owned()
    } else if form {
        percent(value)
    } else {
        value.to_owned()
    }
}

fn percent(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The gateway request of one SMS, stored as its delivery's body: `{"url": .., "body": ..}` with
/// the placeholders filled in (the method and headers come from the rule when it is sent).
pub fn sms_request(rule: &Sms, phone: &str, text: &str) -> String {
    let content_type = rule
        .headers
        .iter()
        .find(|(k, _)| k == http::header::CONTENT_TYPE)
        .and_then(|(_, v)| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let json = content_type.contains("json");
    let form = content_type.contains("x-www-form-urlencoded");
    let url = rule
        .url
        .replace("{phone}", &percent(phone))
        .replace("{text}", &percent(text));
    let body = rule
        .body
        .replace("{phone}", &escaped(phone, json, form))
        .replace("{text}", &escaped(text, json, form));
    json!({ "url": url, "body": body }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_a_dot_and_the_body() {
        // The value Python's hmac module gives for the same key and "<t>.<body>" (the README's
        // receiver snippet).
        let sig = signature(b"0123456789abcdef", 1700000000, b"{\"a\":1}");
        assert_eq!(
            sig,
            "t=1700000000,v1=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8c3a23"
        );
        assert_ne!(
            sig,
            signature(b"0123456789abcdeX", 1700000000, b"{\"a\":1}")
        );
        assert_ne!(
            sig,
            signature(b"0123456789abcdef", 1700000001, b"{\"a\":1}")
        );
        assert_eq!(
            signature(b"key", 0, b"The quick brown fox jumps over the lazy dog"),
            "t=0,v1=".to_owned()
                + &hex::encode({
                    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"key").unwrap();
                    mac.update(b"0.The quick brown fox jumps over the lazy dog");
                    mac.finalize().into_bytes()
                })
        );
    }

    #[test]
    fn a_reason_quoting_the_caller_is_masked() {
        let e = StoredEvent {
            seq: 7,
            ticket_id: doorstep_domain::TicketId::parse("t1").unwrap(),
            event: doorstep_domain::Event {
                at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                actor: doorstep_domain::Actor::new("supervisor@lixia"),
                change: Change::Urged {
                    reason: "张三 rang again from 13812345678".into(),
                },
                status_after: doorstep_domain::Status::Dispatched,
            },
        };
        let reason = event_json(&e, "张三")["reason"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !reason.contains("张三") && !reason.contains("12345678"),
            "{reason}"
        );
        assert!(reason.contains("rang again"), "{reason}");
    }

    #[test]
    fn placeholders_are_escaped_for_the_body_they_go_into() {
        assert_eq!(escaped("a\"b\n", true, false), "a\\\"b\\n");
        assert_eq!(
            escaped("超期 1&2", false, true),
            "%E8%B6%85%E6%9C%9F%201%262"
        );
        assert_eq!(escaped("x y", false, false), "x y");
    }
}
