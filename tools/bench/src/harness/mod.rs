//! What the benches share, so that each measures and reports the same way: CPU time and memory
//! of processes from `/proc`, the pids of the local servers, the CPU an interval cost them,
//! percentiles and how numbers print, and how a bench starts (its command line, its runtime and
//! the throwaway names that keep its data apart from everything else on the servers).

pub mod cli;
pub mod cpu;
pub mod env;
pub mod procfs;
pub mod servers;
pub mod stats;
