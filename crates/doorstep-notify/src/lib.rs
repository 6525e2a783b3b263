//! Notifications: the responsible people told the moment a clock runs out, delivered at least once,
//! never lost.
//!
//! A notifier runs wherever the SLA scheduler runs (`doorstep serve` without `--no-sla`, and
//! `doorstep sla`), on a task of its own. It folds the event log into deliveries behind a cursor of
//! its own, as the reporting rows are folded, so a delivery is in the database once the events
//! behind it are considered, whatever crashes; then it claims the due deliveries under a lease, as
//! the scheduler claims timers, and sends them: a webhook (a signed JSON POST) or an SMS through an
//! HTTP gateway, to the board members the rule names by role.
//!
//! Layout:
//! - `rules`: the `[[notify.webhook]]` and `[[notify.sms]]` rules of the config file, checked at
//!   start-up ([`Rules::parse`], [`RuleError`] naming the key);
//! - `render`: the webhook body and its signature, the SMS text and the gateway request;
//! - `http`: a lean HTTP/1.1 client (hyper, rustls for https), every attempt under a timeout;
//! - `notifier`: the [`Notifier`] (recording, claiming, attempting, settling, retry backoff) and
//!   its metrics.

pub mod http;
mod notifier;
pub mod render;
mod rules;

pub use notifier::{ATTEMPTS, EVENTS_BEHIND, FAILED, LAG, Notifier, NotifierConfig, PENDING};
pub use rules::{EVENT_KINDS, Filter, MIN_SECRET, RuleError, Rules, Sms, Target, Webhook};
