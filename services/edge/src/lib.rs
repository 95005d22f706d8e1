//! The edge: the HTTP API and STOMP over WebSocket that clients talk to.
//!
//! An edge keeps no state another edge needs: every write becomes one event in the JetStream
//! log, every read comes from the Cassandra projections or from what the edge itself follows of
//! the log, so any number of edges run side by side.

pub mod api;
pub mod app;
pub mod auth;
pub mod client_ids;
pub mod error;
pub mod events;
pub mod extract;
pub mod live;
pub mod membership;
pub mod message_changes;
pub mod observe;
pub mod progress;
pub mod rooms;
pub mod settings;
pub mod stomp;
pub mod store;
pub mod views;
pub mod web;
pub mod writer;

pub use app::{AppState, StartError};
pub use settings::Settings;
