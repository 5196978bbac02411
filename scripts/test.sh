#!/usr/bin/env bash
# Runs the whole test suite: unit tests, HTTP API tests, and the integration and end-to-end
# tests, which start their own containerd in temporary directories and push and pull with
# skopeo and ctr over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --all-targets --quiet
cargo test --all-targets
