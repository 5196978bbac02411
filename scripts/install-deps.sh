#!/usr/bin/env bash
# Installs what building and testing the registry need on Debian 12, as root: containerd, protoc
# (containerd-client compiles containerd's protos at build time), the test clients (skopeo, curl),
# and systemd, whose systemd-analyze checks the example unit.
set -euo pipefail

packages=(containerd protobuf-compiler skopeo curl systemd ca-certificates tar gzip)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run this script as root or install them with apt-get" >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install a Rust toolchain (rustup, https://rustup.rs), then run this again" >&2
  exit 1
fi
