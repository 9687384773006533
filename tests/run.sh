#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the real test servers need (when missing),
# then runs every unit and integration test. Used as-is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
cargo build --locked --all-targets
cargo test --locked -- --test-threads=2
