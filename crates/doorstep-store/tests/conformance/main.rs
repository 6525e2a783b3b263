//! The store conformance suite, one binary with a module per subject. Every case runs against
//! SQLite and against a real PostgreSQL (a throwaway cluster this binary starts; see
//! `doorstep_store::testing`), on an empty database of its own: `doorstep_store::both_backends!`
//! in each subject makes its `sqlite::` and `postgres::` tests.

mod world;

mod admin;
mod batches;
mod closing;
mod configuration;
mod deliveries;
mod lists;
mod reports;
mod security;
mod tickets;
mod timers;
