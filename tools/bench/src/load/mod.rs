//! `bench load` and `bench worker`: the load generator for one edge, with plain NATS as the
//! baseline. The coordinator (`bench load`) starts worker processes (`bench worker`, this same
//! executable) that hold the connections.

pub mod coordinator;
pub mod edge_load;
mod hops;
mod http_probe;
mod options;
mod raw_load;
mod schedule;
mod setup;
mod wire;
pub mod worker;

pub use options::{Options, USAGE};
