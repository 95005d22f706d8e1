//! `bench`: every benchmark and load tool of the workspace in one binary, over one harness.
//!
//! - `bench load --url http://127.0.0.1:PORT [options]` creates GROUP rooms through the HTTP
//!   API, opens one authenticated STOMP connection per simulated user (spread over worker
//!   processes and loopback source addresses), sends chat messages at a fixed total rate, times
//!   every delivery, then does the same over core NATS publish/subscribe and prints both side by
//!   side. `scripts/bench` starts everything around it; `docs/benchmarks.md` explains the numbers.
//! - `bench worker` is internal: one worker process, driven by `bench load` over stdin and stdout.
//! - `bench chaos` is the chaos test of the local cluster (`scripts/chaos`): steady load over
//!   every edge while nodes are killed and frozen, and what that lost, duplicated or delayed.
//! - `bench projector`: the projector against raw Cassandra inserts, and history page reads.
//! - `bench receipts`: what the receipts worker's read state costs in Redis, beside raw Redis.
//! - `bench push`: the notifier's pushes of a burst in a big room, beside the raw FCM emulator.
//!
//! What they share (CPU time and memory from `/proc`, the local servers' pids, percentiles and
//! how numbers print, throwaway names and the command line) is in [`harness`].

mod chaos;
mod harness;
mod load;
mod projector;
mod push;
mod receipts;

/// Runs the subcommand named by the first argument with the rest.
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("load") => load::coordinator::main(load::Options::parse(rest)?),
        Some("worker") => load::worker::main(),
        Some("chaos") => chaos::main(chaos::Options::parse(rest)?),
        Some("projector") => projector::main(rest),
        Some("receipts") => receipts::main(rest),
        Some("push") => push::main(rest),
        _ => {
            eprintln!(
                "{}\n\n{}\n\n{}\n\n{}\n\n{}",
                load::USAGE,
                chaos::USAGE,
                projector::USAGE,
                receipts::USAGE,
                push::USAGE
            );
            std::process::exit(2);
        }
    }
}
