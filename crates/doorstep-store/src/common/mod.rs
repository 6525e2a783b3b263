//! What both backends share: the row encodings, the SQL text, the district as rows, the cutting of a
//! batch into runs, the sqlx error mapping, the intake queue that gathers registrations into batches, and the store methods whose bodies are the same on both
//! (`shared`), written once with the dialect differences as parameters.

pub(crate) mod chain;
pub(crate) mod codec;
pub(crate) mod district;
pub(crate) mod error;
pub(crate) mod intake;
pub(crate) mod security;
pub(crate) mod shared;
pub(crate) mod sql;
