#!/usr/bin/env bash
# Builds and runs the registry against containerd. When no containerd responds on the configured
# socket, starts a private one with its own root, state and socket, and stops it on exit.
#
# Usage: scripts/run-registry.sh [CONFIG]   (CONFIG defaults to config.example.yml)
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-config.example.yml}
bash scripts/install-deps.sh
cargo build --release --quiet

address=${REGISTRY_STORAGE_CONTAINERD_ADDRESS:-}
if [ -z "$address" ]; then
  address=$(sed -n 's/^ *address: *//p' "$config" | head -n 1)
fi
address=${address:-/run/containerd/containerd.sock}

private_pid=""
stop_private() {
  if [ -n "$private_pid" ]; then
    kill "$private_pid" 2>/dev/null || true
    wait "$private_pid" 2>/dev/null || true
  fi
}
trap stop_private EXIT

if ctr --address "$address" version >/dev/null 2>&1; then
  echo "using the containerd at $address"
else
  base=${CONTAINERD_REGISTRY_PRIVATE_DIR:-/var/lib/containerd-registry/private-containerd}
  mkdir -p "$base/root" "$base/state"
  address="$base/containerd.sock"
  cat >"$base/config.toml" <<TOML
version = 2
root = "$base/root"
state = "$base/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$address"
[ttrpc]
  address = "$base/containerd.sock.ttrpc"
TOML
  echo "no containerd responds; starting a private one at $address (log: $base/containerd.log)"
  containerd --config "$base/config.toml" >"$base/containerd.log" 2>&1 &
  private_pid=$!
  for _ in $(seq 1 100); do
    ctr --address "$address" version >/dev/null 2>&1 && break
    kill -0 "$private_pid" 2>/dev/null || { echo "containerd exited; see $base/containerd.log" >&2; exit 1; }
    sleep 0.1
  done
fi

export REGISTRY_STORAGE_CONTAINERD_ADDRESS="$address"
target/release/containerd-registry check "$config"
target/release/containerd-registry serve "$config"
