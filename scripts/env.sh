# Sourced by the project's scripts: one persistent Cargo target directory outside the
# clone, shared by every build, test and CI run (a clean build of RocksDB takes ~10-20 min).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kudu-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
