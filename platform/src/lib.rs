//! The pieces every chat service needs before it does its own work: its configuration
//! ([`settings`]), its logs ([`telemetry`]), its connections to the servers it stands on
//! ([`connect`], [`redis_connection`] for a single Redis or a cluster alike), appending to the log without ever blocking for good ([`append`]), reading it in batches
//! through one long-lived pull ([`pull`]) and in order ([`log_order`]) and telling
//! an orchestrator whether it can work ([`health`]) and how it is doing ([`metrics`]), and sharing
//! how far the log was read or applied ([`watermark`]). Nothing
//! service-specific lives here.

pub mod append;
pub mod backoff;
pub mod connect;
pub mod health;
pub mod log_order;
pub mod metrics;
pub mod pull;
pub mod redis_connection;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod watermark;
