//! The notifier: sends FCM pushes (HTTP v1) for new messages to members who are not in the room
//! and have not muted it, on every device, and for invites to the invited; removes tokens FCM
//! calls dead. `docs/notifier.md` explains the rules, the payload and the guarantees.

pub mod audience;
pub mod directory;
pub mod fcm;
pub mod settings;
mod worker;

pub use settings::{NotifierSettings, Settings};
pub use worker::{run, NotifierError};
