//! The receipts worker: presence and read positions in Redis, applied from the chat
//! log in each room's order, and the live view clients receive (CHAT with `unreadCount`,
//! INFO, OUT, room-list feeds with `roomUnreadCount`).
//!
//! [`run`] is the service, [`rebuild`] recreates the state from the log, and `apply.lua` holds
//! the rules. The key names and the read side the edge and the notifier use are the
//! `chat-read-state` crate (`read-state/`). `docs/receipts.md` explains the design, the keys
//! and the memory they take.

mod lease;
pub mod partition;
mod predict;
pub mod publish;
mod reaper;
mod rebuild;
mod reply;
pub mod room_counts;
pub mod settings;
pub mod state;
mod worker;

pub use rebuild::{rebuild, RebuildReport};
pub use settings::{ReceiptsSettings, Settings};
pub use state::{LoggedEvent, Outcome, ReadState, ReadStateError};
pub use worker::{run, WorkerError};
