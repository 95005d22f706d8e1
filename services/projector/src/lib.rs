//! The projector: applies the chat event log (JetStream) to the Cassandra projections that the
//! edges read — rooms, each user's rooms, history in time buckets, client message ids — and
//! records how far it got so writers can wait to read their own writes.
//!
//! Every write is stamped `USING TIMESTAMP <stream sequence>`, so applying any event again, in
//! any order within a batch, or replaying the whole log into a fresh keyspace, yields the same
//! tables. [`run`] is the service; [`replay`] rebuilds a keyspace; [`plan`] holds the pure rules.
//! `docs/projector.md` describes the tables, the progress signal and the tools.

mod apply;
mod batches;
mod error;
mod lease;
mod live;
pub mod plan;
mod replay;
mod retry;
pub mod settings;
mod state;
pub mod store;

pub use error::ProjectorError;
pub use lease::LeaseError;
pub use live::run;
pub use replay::{replay, ReplayReport};
pub use settings::{ProjectorSettings, Settings};
