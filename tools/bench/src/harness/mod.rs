//! What the benches share, so that each measures the same way: CPU time and memory of
//! processes from `/proc`, latency histograms and how numbers print.

pub mod procfs;
pub mod stats;
