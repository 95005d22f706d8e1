//! The pieces every chat service needs before it does its own work: its configuration
//! ([`settings`]), its logs ([`telemetry`]) and its connections to the servers it stands on
//! ([`connect`]). Nothing service-specific lives here.

pub mod backoff;
pub mod connect;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
