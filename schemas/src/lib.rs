//! The one definition of what flows through the chat system.
//!
//! Every service speaks the types in this crate: the [`Envelope`] and [`ChatEvent`] written to the
//! JetStream log, the subject names events are published on ([`EventLog`]), the stream definition
//! that makes the log durable, and the CQL schema of the Cassandra projections ([`cql`]). Keeping
//! them in one place is what lets the log be replayed and new consumers be written against it.

pub mod codec;
pub mod cql;
mod event;
mod ids;
mod log;
pub mod view;

pub use codec::{decode, encode, DecodeError, EncodeError};
pub use event::{ChatEvent, Envelope, Quote, RoomKind, Timestamp, SCHEMA_VERSION};
pub use ids::{IdError, MessageId, RoomId, UserId};
pub use log::EventLog;
