#!/usr/bin/env bash
# The test command from the README: every unit, store, CLI and crash-safety test.
# Tests use real parts only: real SQLite files, the real binary, real processes killed with SIGKILL.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets "$@"
