//! The reporting rows of one ticket: the domain's SLA facts ([`doorstep_domain::sla_facts`], the
//! reporting definitions) as rows in epoch milliseconds, with the columns reports group by; and the
//! log as the projector reads it.

use doorstep_domain::sla_facts::{self, MarkKind, SlaFacts};
use doorstep_domain::{Change, Event};

use crate::Result;
use crate::common::codec::{from_millis, millis};

/// A ticket's `report_facts` row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    pub(crate) ticket_id: String,
    pub(crate) node_path: String,
    pub(crate) level: String,
    pub(crate) category: String,
    pub(crate) created_at: i64,
    pub(crate) first_dispatch_at: Option<i64>,
    pub(crate) ack_on_time: bool,
    pub(crate) ack_pending_due: Option<i64>,
    pub(crate) first_resolved_at: Option<i64>,
    pub(crate) resolved_on_time: bool,
    pub(crate) resolve_ms: Option<i64>,
    pub(crate) resolve_breached: bool,
    pub(crate) merged_at: Option<i64>,
    pub(crate) due_now: Option<i64>,
    pub(crate) open_since: Option<i64>,
    pub(crate) breached: bool,
    pub(crate) red_since: Option<i64>,
}

/// A `report_marks` row: an event counted per window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub(crate) seq: i64,
    pub(crate) kind: i32,
    pub(crate) at: i64,
    pub(crate) satisfied: bool,
    pub(crate) solved: bool,
}

pub(super) const MARK_ESCALATION: i32 = 1;
pub(super) const MARK_CALLBACK: i32 = 2;

/// A change to the ticket's `report_overdue` or `report_breached` rows ([`sla_facts::OverdueOp`] in
/// epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OverdueOp {
    /// The open row ends here (it was overdue for a while).
    Close { ends: i64 },
    /// The open row never became overdue: delete it.
    Drop,
    /// A new running deadline: overdue from `since` on.
    Open { since: i64 },
}

impl Facts {
    /// The row of a ticket right after its CREATED event (`None` for any other event).
    pub(crate) fn created(node_path: &str, event: &Event) -> Option<Facts> {
        let Change::Created {
            id, intake, level, ..
        } = &event.change
        else {
            return None;
        };
        let sla = SlaFacts::created(event)?;
        Some(Facts::of(
            id.as_str().to_owned(),
            node_path.to_owned(),
            level.as_str().to_owned(),
            intake.category.as_str().to_owned(),
            &sla,
        ))
    }

    fn of(
        ticket_id: String,
        node_path: String,
        level: String,
        category: String,
        sla: &SlaFacts,
    ) -> Facts {
        Facts {
            ticket_id,
            node_path,
            level,
            category,
            created_at: millis(sla.created_at),
            first_dispatch_at: sla.first_dispatch_at.map(millis),
            ack_on_time: sla.ack_on_time,
            ack_pending_due: sla.ack_pending_due.map(millis),
            first_resolved_at: sla.first_resolved_at.map(millis),
            resolved_on_time: sla.resolved_on_time,
            resolve_ms: sla.resolve_ms,
            resolve_breached: sla.resolve_breached,
            merged_at: sla.merged_at.map(millis),
            due_now: sla.due_now.map(millis),
            open_since: sla.open_since.map(millis),
            breached: sla.breached,
            red_since: sla.red_since.map(millis),
        }
    }

    /// The same ticket's row with the facts `sla`.
    pub(super) fn with(&self, sla: &SlaFacts) -> Facts {
        Facts::of(
            self.ticket_id.clone(),
            self.node_path.clone(),
            self.level.clone(),
            self.category.clone(),
            sla,
        )
    }

    /// The facts this row holds, to fold more events into.
    pub(super) fn sla(&self) -> Result<SlaFacts> {
        let at = |ms: Option<i64>| ms.map(from_millis).transpose();
        Ok(SlaFacts {
            created_at: from_millis(self.created_at)?,
            first_dispatch_at: at(self.first_dispatch_at)?,
            ack_on_time: self.ack_on_time,
            ack_pending_due: at(self.ack_pending_due)?,
            first_resolved_at: at(self.first_resolved_at)?,
            resolved_on_time: self.resolved_on_time,
            resolve_ms: self.resolve_ms,
            resolve_breached: self.resolve_breached,
            merged_at: at(self.merged_at)?,
            due_now: at(self.due_now)?,
            open_since: at(self.open_since)?,
            breached: self.breached,
            red_since: at(self.red_since)?,
        })
    }
}

impl Mark {
    pub(super) fn row(mark: &sla_facts::Mark) -> Mark {
        Mark {
            seq: mark.seq,
            kind: match mark.kind {
                MarkKind::Escalation => MARK_ESCALATION,
                MarkKind::Callback => MARK_CALLBACK,
            },
            at: millis(mark.at),
            satisfied: mark.satisfied,
            solved: mark.solved,
        }
    }
}

impl OverdueOp {
    pub(super) fn row(op: &sla_facts::OverdueOp) -> OverdueOp {
        match *op {
            sla_facts::OverdueOp::Close { ends } => OverdueOp::Close { ends: millis(ends) },
            sla_facts::OverdueOp::Drop => OverdueOp::Drop,
            sla_facts::OverdueOp::Open { since } => OverdueOp::Open {
                since: millis(since),
            },
        }
    }
}

/// Every row of one ticket from its whole history (the domain's fold, as rows).
pub(super) fn fold(node_path: &str, events: &[(i64, Event)]) -> Option<TicketRows> {
    let ((_, first), _) = events.split_first()?;
    let identity = Facts::created(node_path, first)?;
    let (sla, marks, ops, red) = sla_facts::fold_with_red_cards(events)?;
    Some(TicketRows {
        facts: identity.with(&sla),
        change: FactsChange::Whole,
        marks: marks.iter().map(Mark::row).collect(),
        ops: ops.iter().map(OverdueOp::row).collect(),
        red: red.iter().map(OverdueOp::row).collect(),
    })
}

pub(super) fn bool_int(b: bool) -> i32 {
    i32::from(b)
}

/// One ticket's events read from the log by the projector, in seq order.
pub(super) struct Projecting {
    pub(super) ticket_id: String,
    /// The ticket's node path when its events were appended (a new facts row takes it).
    pub(super) node_path: String,
    pub(super) events: Vec<Logged>,
}

/// One event of the log as the projector reads it.
pub(super) struct Logged {
    pub(super) seq: i64,
    pub(super) event: Event,
    /// On the last event a commit appended: the commit's instant and the ticket's running resolve
    /// deadline after it, in epoch milliseconds.
    pub(super) commit: Option<(i64, Option<i64>)>,
}

/// `(seq, ticket_id, node_path, payload, commit_at, resolve_due)`.
pub(super) type LoggedRow = (i64, String, String, String, Option<i64>, Option<i64>);

/// The log's rows grouped by ticket, in the order of each ticket's first event; the last seq read.
pub(super) fn group(rows: Vec<LoggedRow>) -> Result<(Vec<Projecting>, i64)> {
    let mut tickets: Vec<Projecting> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut last = 0;
    for (seq, ticket_id, node_path, payload, commit_at, resolve_due) in rows {
        last = seq;
        let event = serde_json::from_str::<Event>(&payload)?;
        let logged = Logged {
            seq,
            event,
            commit: commit_at.map(|at| (at, resolve_due)),
        };
        match index.get(&ticket_id) {
            Some(&i) => tickets[i].events.push(logged),
            None => {
                index.insert(ticket_id.clone(), tickets.len());
                tickets.push(Projecting {
                    ticket_id,
                    node_path,
                    events: vec![logged],
                });
            }
        }
    }
    Ok((tickets, last))
}

/// One ticket's report rows to write.
pub(super) struct TicketRows {
    pub(super) facts: Facts,
    /// How its facts row changed.
    pub(super) change: FactsChange,
    pub(super) marks: Vec<Mark>,
    pub(super) ops: Vec<OverdueOp>,
    /// Changes to its `report_breached` rows.
    pub(super) red: Vec<OverdueOp>,
}

/// How a ticket's facts row changed, which decides the statement that writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FactsChange {
    None,
    /// Only columns no index covers (the running deadline and the pending sign-for): an `UPDATE`
    /// of those alone leaves the row's four index entries as they are.
    Unindexed,
    /// A new row, or an indexed column changed: the whole row is upserted.
    Whole,
}

impl Facts {
    /// How `self` differs from the row as stored (`None`: no row yet).
    pub(super) fn change_from(&self, stored: Option<&Facts>) -> FactsChange {
        let Some(stored) = stored else {
            return FactsChange::Whole;
        };
        // `self` with the stored values of the columns no index covers.
        let indexed_alike = Facts {
            ack_pending_due: stored.ack_pending_due,
            resolve_breached: stored.resolve_breached,
            due_now: stored.due_now,
            open_since: stored.open_since,
            breached: stored.breached,
            red_since: stored.red_since,
            ..self.clone()
        };
        if self == stored {
            FactsChange::None
        } else if indexed_alike == *stored {
            FactsChange::Unindexed
        } else {
            FactsChange::Whole
        }
    }
}

/// What a ticket's overdue operations, applied in order, do to its rows: what becomes of the stored
/// open interval (a close or a drop), and the new intervals `(since, ends)`.
pub(super) fn settle(ops: &[OverdueOp]) -> (Option<OverdueOp>, Vec<(i64, Option<i64>)>) {
    let mut stored = None;
    let mut new: Vec<(i64, Option<i64>)> = Vec::new();
    for op in ops {
        let open_new = new.last().is_some_and(|(_, ends)| ends.is_none());
        match *op {
            OverdueOp::Open { since } => new.push((since, None)),
            OverdueOp::Close { ends } if open_new => {
                if let Some(last) = new.last_mut() {
                    last.1 = Some(ends);
                }
            }
            OverdueOp::Drop if open_new => {
                new.pop();
            }
            OverdueOp::Close { .. } | OverdueOp::Drop => stored = Some(*op),
        }
    }
    (stored, new)
}
