#!/usr/bin/env bash
# Runs the whole test suite: unit tests, HTTP API tests, and the integration and end-to-end
# tests, which start their own containerd in temporary directories and push and pull with
# skopeo and ctr over loopback. Every target runs against the system's containerd (1.6 on
# Debian 12). The containerd-backed targets below then run again against containerd 1.7 and 2.x,
# which scripts/containerd-versions.sh fetches from Debian on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --all-targets --quiet
cargo test --all-targets

containerd_targets=(--test containerd_storage --test e2e --test read_strategies --test faults --test garbage_collection
  --test bad_input --test concurrency --test isolation --test upload_purging --test health --test response_headers
  --test conformance_containerd --test disk_full --test metrics --test tls --test shutdown --test locations --test auth)
releases="$(bash scripts/containerd-versions.sh)"
while read -r name bin_dir; do
  echo "running ${containerd_targets[*]} against containerd $name ($bin_dir)"
  CONTAINERD_BIN="$bin_dir/containerd" CTR_BIN="$bin_dir/ctr" cargo test "${containerd_targets[@]}"
done <<<"$releases"
