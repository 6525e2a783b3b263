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
