//! Binaries of the workspace build.

use std::path::{Path, PathBuf};

/// The workspace binary `name` (e.g. `kudu`): beside the test executable's directory
/// (`target/debug/deps/..`), else under `$CARGO_TARGET_DIR/debug`. Panics with what to do
/// when it was not built.
pub fn workspace_bin(name: &str) -> PathBuf {
    let beside_tests = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join(name)));
    let from_env = std::env::var_os("CARGO_TARGET_DIR").map(|dir| Path::new(&dir).join("debug").join(name));
    beside_tests.into_iter().chain(from_env).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("the {name} binary is missing: build it first with `cargo build --workspace` (same CARGO_TARGET_DIR)")
    })
}
