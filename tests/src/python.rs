//! The tests' Python environment: the API fuzzer and the analytics example run in it.

use std::path::PathBuf;

/// The Python interpreter of the tests' virtual environment: `CHAT_PYTHON` when set (as
/// `scripts/test` does), else the environment `scripts/test` makes, `.local/venv`. Panics with
/// what to run when there is none: a test that needs Python must not pass without running it.
pub fn interpreter() -> PathBuf {
    if let Some(path) = std::env::var_os("CHAT_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/venv/bin/python");
    assert!(
        venv.exists(),
        "no Python environment at {}: run scripts/test once (its python phase makes it), \
         or set CHAT_PYTHON to an interpreter with tests/python/requirements.txt installed",
        venv.display()
    );
    venv
}

/// The repository's root directory, where the Python programs and their files live.
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("repository root: {e}"))
}
