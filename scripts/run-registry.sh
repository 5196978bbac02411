#!/usr/bin/env bash
# Builds and runs the registry against containerd. When no containerd responds on the configured
# socket, starts a private one with its own root, state and socket, and stops it on exit.
#
# Usage: scripts/run-registry.sh [CONFIG]   (CONFIG defaults to config.example.yml)
# The private containerd lives in $CONTAINERD_REGISTRY_PRIVATE_DIR, by default
# /var/lib/containerd-registry/private-containerd, with its socket at containerd.sock there.
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-config.example.yml}
bash scripts/install-deps.sh
echo "building the registry (cargo build --release)"
cargo build --release

# The socket the config names: the first `address:` key, without quotes, a trailing comment or
# a unix:// prefix, unless the environment overrides it.
address=${REGISTRY_STORAGE_CONTAINERD_ADDRESS:-}
if [ -z "$address" ] && [ -f "$config" ]; then
  address=$(sed -n 's/^[[:space:]]*address:[[:space:]]*//p' "$config" | head -n 1 |
    sed -e 's/[[:space:]]#.*$//' -e 's/[[:space:]]*$//' -e "s/^[\"']//" -e "s/[\"']$//" -e 's|^unix://||')
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
  mkdir -p "$base/root" "$base/state" "$base/opt"
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
[plugins."io.containerd.internal.v1.opt"]
  path = "$base/opt"
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
