//! Firebase Cloud Messaging, HTTP v1: credentials, the message, the send with FCM's error rules.

pub mod auth;
pub mod client;
pub mod message;
pub mod outcome;

pub use auth::{AuthError, Credentials};
pub use client::{Delivery, FcmClient, RetryPolicy, TlsError};
pub use message::{mark_resent, message, Notice};
