//! `loadgen`: a load generator for one edge, with plain NATS as the baseline.
//!
//! `loadgen run --url http://127.0.0.1:PORT [options]` creates GROUP rooms through the HTTP API,
//! opens one authenticated STOMP connection per simulated user (spread over worker processes and
//! loopback source addresses), sends chat messages at a fixed total rate, times every delivery,
//! then does the same over core NATS publish/subscribe and prints both side by side.
//! `scripts/bench` starts everything around it; `docs/benchmarks.md` explains the numbers.
//! `loadgen worker` is internal: one worker process, driven by `run` over stdin and stdout.
//! `loadgen chaos` is the chaos test of the local cluster (`scripts/chaos`): steady load over
//! every edge while nodes are killed and frozen, and what that lost, duplicated or delayed.

mod chaos;
mod coordinator;
mod edge_load;
mod options;
mod procfs;
mod raw_load;
mod schedule;
mod setup;
mod stats;
mod wire;
mod worker;

use options::{Options, USAGE};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => coordinator::main(Options::parse(&args[1..])?),
        Some("worker") => worker::main(),
        Some("chaos") => chaos::main(chaos::Options::parse(&args[1..])?),
        _ => {
            eprintln!("{USAGE}\n\n{}", chaos::USAGE);
            std::process::exit(2);
        }
    }
}
