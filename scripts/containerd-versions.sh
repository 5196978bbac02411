#!/usr/bin/env bash
# Fetches the containerd releases that the integration tests run against besides the system's
# (Debian 12 ships 1.6): 1.7 from Debian 13 (trixie) and 2.x from Debian unstable (sid). Each
# package is unpacked into its own directory under the cache and never installed, and apt runs
# with a private sources list, lists, cache and status, so the system's apt setup stays as it is.
#
# Prints one line per release, "NAME BIN_DIR", where BIN_DIR holds containerd and ctr; progress
# goes to stderr. A release whose binaries are already unpacked and run is not fetched again, so
# a second run makes no network request.
#
# Sid's 2.1.9+ds1-5 (checked when this script was written) needs glibc 2.34 and runs on Debian
# 12's 2.36. A later sid package may need a newer glibc. Then the version check below fails with
# the loader's message, and the "2" line of RELEASES should name a suite whose package still runs.
#
# Usage: scripts/containerd-versions.sh [--refresh]
#   --refresh  fetches every release again, for example to follow a new sid upload.
# Environment:
#   CONTAINERD_VERSIONS_CACHE  where the releases go (default /var/cache/containerd-registry)
set -euo pipefail

# NAME SUITE: the release line tested and the Debian suite whose containerd package provides it.
RELEASES=(
  "1.7 trixie"
  "2 sid"
)

cache="${CONTAINERD_VERSIONS_CACHE:-/var/cache/containerd-registry}"
refresh=0
case "${1:-}" in
  "") ;;
  --refresh) refresh=1 ;;
  *)
    echo "usage: $0 [--refresh]" >&2
    exit 2
    ;;
esac

# Reuses the Debian mirror of the system's own sources, so no other host is contacted.
system_mirror() {
  local mirror
  mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')"
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  if [ -z "$mirror" ]; then
    echo "no Debian archive (a URI ending in /debian) in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources" >&2
    exit 1
  fi
  echo "${mirror%/}"
}

# Returns success when DIR contains a containerd and a ctr that run on this system.
binaries_run() {
  local dir="$1"
  "$dir/usr/bin/containerd" --version >/dev/null 2>&1 && "$dir/usr/bin/ctr" --version >/dev/null 2>&1
}

# Downloads SUITE's containerd package with a private apt setup under APT_DIR and unpacks it
# into DEST.
fetch_suite() {
  local suite="$1" apt_dir="$2" dest="$3" mirror="$4"
  mkdir -p "$apt_dir/sources.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/download"
  touch "$apt_dir/status"

  # Targets limits the update to the package index, and skips translations and AppStream data.
  cat >"$apt_dir/sources.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Targets: Packages
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local apt_options=(
    -q
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$apt_dir/sources.d"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "Dir::State::Status=$apt_dir/status"
    -o "APT::Get::List-Cleanup=0"
    -o "APT::Architectures=$(dpkg --print-architecture)"
  )

  echo "fetching containerd from Debian $suite ($mirror)" >&2
  apt-get "${apt_options[@]}" update >&2

  # As root, apt downloads as the _apt user, which needs to write into the download directory.
  if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$apt_dir/download"
  fi
  rm -f "$apt_dir/download"/containerd_*.deb
  (cd "$apt_dir/download" && apt-get "${apt_options[@]}" download containerd >&2)

  local deb
  deb="$(ls "$apt_dir/download"/containerd_*.deb)"
  rm -rf "$dest.partial"
  dpkg-deb -x "$deb" "$dest.partial"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  rm -f "$deb"
}

mkdir -p "$cache"
mirror=""
for release in "${RELEASES[@]}"; do
  read -r name suite <<<"$release"
  dest="$cache/containerd-$suite"

  if [ "$refresh" -eq 1 ] || ! binaries_run "$dest"; then
    [ -n "$mirror" ] || mirror="$(system_mirror)"
    fetch_suite "$suite" "$cache/apt-$suite" "$dest" "$mirror"
    if ! binaries_run "$dest"; then
      echo "containerd from Debian $suite does not run on this system:" >&2
      "$dest/usr/bin/containerd" --version >&2 || true
      exit 1
    fi
  fi

  version="$("$dest/usr/bin/containerd" --version)"
  echo "containerd $name from Debian $suite: $version" >&2
  echo "$name $dest/usr/bin"
done
