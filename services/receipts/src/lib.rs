//! The receipts worker: presence and read positions in Redis, applied from the chat
//! log in each room's order, and the live view clients receive (CHAT with `unreadCount`,
//! INFO, OUT, room-list feeds with `roomUnreadCount`).
//!
//! [`run`] is the service, [`rebuild`] recreates the state from the log, [`UnreadCounts`] is
//! the read side the edge uses, and `apply.lua` holds the rules. `docs/receipts.md` explains
//! the design, the keys and the memory they take.

pub mod keys;
mod lease;
pub mod partition;
pub mod publish;
pub mod query;
mod reaper;
mod rebuild;
mod reply;
pub mod room_counts;
pub mod settings;
pub mod state;
mod worker;

pub use keys::ReadKeys;
pub use query::{MemberCounts, Present, QueryError, UnreadCounts};
pub use rebuild::{rebuild, RebuildReport};
pub use settings::{ReceiptsSettings, Settings};
pub use state::{LoggedEvent, Outcome, ReadState, ReadStateError};
pub use worker::{run, WorkerError};
