//! A batch's commits of one ticket form a chain: each was decided on the ticket as the one before it
//! leaves it. When a link is not written, the rest of the chain must not be tried, and the version
//! check alone cannot tell: another writer may have taken the ticket to the very version a later link
//! expects, with other events. Written, that link would overwrite them (three racing schedulers once
//! lost a breach's escalation this way, re-armed its timer and escalated it twice).

use std::collections::HashMap;

use doorstep_domain::TicketId;

use crate::{Result, StoreError};

/// The tickets of one batch with a commit not written so far.
#[derive(Debug, Default)]
pub(crate) struct Broken {
    /// For a conflict, the versions the unwritten commit expected and found.
    tickets: HashMap<TicketId, Option<(i64, i64)>>,
}

impl Broken {
    /// Why a commit of `id` must not be tried: an earlier commit of it in the batch was not written.
    pub(crate) fn refusal(&self, id: &TicketId) -> Option<StoreError> {
        Some(match self.tickets.get(id)? {
            Some((expected, actual)) => StoreError::Conflict {
                id: id.clone(),
                expected: *expected,
                actual: *actual,
            },
            None => StoreError::Database(format!(
                "ticket {id}: an earlier commit of it in this batch was not written"
            )),
        })
    }

    /// Notes a commit's answer (the first failure of a ticket is the one kept).
    pub(crate) fn note<T>(&mut self, id: &TicketId, answer: &Result<T>) {
        if let Err(e) = answer {
            let versions = match e {
                StoreError::Conflict {
                    expected, actual, ..
                } => Some((*expected, *actual)),
                _ => None,
            };
            self.tickets.entry(id.clone()).or_insert(versions);
        }
    }
}

/// A batch's commits cut, in order, into runs that name each ticket at most once (a ticket's second
/// commit goes in the next run, so that it sees its first), refusing a ticket's commits once one of
/// it was not written. Both backends' `commit_all` drive it; `C` is a backend's prepared commit.
pub(crate) struct Runs<C> {
    run: Vec<(TicketId, Result<C>)>,
    in_run: std::collections::HashSet<TicketId>,
    broken: Broken,
}

impl<C> Runs<C> {
    pub(crate) fn new() -> Self {
        Runs {
            run: Vec::new(),
            in_run: std::collections::HashSet::new(),
            broken: Broken::default(),
        }
    }

    /// The run to commit (and [`noted`](Self::noted)) before a commit of `id` can be
    /// [`push`](Self::push)ed, when the current run already names `id`.
    pub(crate) fn cut_before(&mut self, id: &TicketId) -> Option<Vec<(TicketId, Result<C>)>> {
        if !self.in_run.contains(id) {
            return None;
        }
        self.in_run.clear();
        Some(std::mem::take(&mut self.run))
    }

    /// Adds a commit to the current run, refused when an earlier commit of its ticket was not
    /// written (a commit that failed before it was tried counts as not written).
    pub(crate) fn push(&mut self, id: TicketId, commit: Result<C>) {
        let commit = match self.broken.refusal(&id) {
            Some(refused) => Err(refused),
            None => commit,
        };
        match &commit {
            Ok(_) => {
                self.in_run.insert(id.clone());
            }
            Err(_) => self.broken.note(&id, &commit),
        }
        self.run.push((id, commit));
    }

    /// The last run, once every commit is pushed.
    pub(crate) fn finish(&mut self) -> Vec<(TicketId, Result<C>)> {
        self.in_run.clear();
        std::mem::take(&mut self.run)
    }

    /// Notes the answers of a committed run, in the run's order.
    pub(crate) fn noted<T>(&mut self, ids: &[TicketId], answers: &[Result<T>]) {
        for (id, answer) in ids.iter().zip(answers) {
            self.broken.note(id, answer);
        }
    }
}
