//! The read state in Redis as the services share it. The receipts worker writes it
//! (`services/receipts`); the edge and the notifier read it. [`ReadKeys`] names every key, so
//! writers and readers agree on where things are; [`UnreadCounts`] answers the counts and
//! presence from read positions (`docs/receipts.md`).

pub mod keys;
pub mod query;

pub use keys::{ReadKeys, RoomKeys};
pub use query::{MemberCounts, Present, QueryError, UnreadCounts};
