//! Where a bench runs: its own runtime, and names of its own on the shared servers.

use std::future::Future;

use uuid::Uuid;

/// Runs `future` on a multi-threaded runtime, as the services run (`#[tokio::main]`).
pub fn runtime<F: Future>(future: F) -> anyhow::Result<F::Output> {
    Ok(tokio::runtime::Runtime::new()?.block_on(future))
}

/// `len` random hex digits (at most 32): the mark of one run in the names of what it creates
/// on the servers (stream, subjects, keyspace, key prefix), so that it touches nothing else and
/// can remove all of it at the end.
pub fn run_id(len: usize) -> String {
    let mut id = Uuid::new_v4().simple().to_string();
    id.truncate(len);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_hex_and_differ() {
        let (a, b) = (run_id(10), run_id(10));
        assert_eq!(a.len(), 10);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
