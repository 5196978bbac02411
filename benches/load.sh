#!/usr/bin/env bash
# Load benchmark of blob GETs and pushes, all systems side by side in one run on loopback:
#   - containerd-registry with each read strategy (fastpath: sendfile, the default; mmap;
#     iouring; and off, one gRPC content.Read stream per response),
#   - nginx (Debian) serving the same blob file with sendfile on, the practical ceiling,
#   - Docker Distribution (Debian package docker-registry, filesystem driver) holding the blob.
# For 1 and 16 connections it prints throughput, requests per second, server CPU seconds per GiB
# and microseconds per request (for this registry: its own process plus containerd's), peak
# anonymous RSS during the run, and the ratios to nginx. The tiny blobs stand for configs and
# small layers, where the cost per request, not per byte, decides. Then it times
# pushes of a 1 GiB blob, monolithic and in 16 MiB chunks, against `ctr content ingest`.
#
# Usage (as root): benches/load.sh   Environment: DURATION (seconds per run, default 10),
# LARGE_MIB (default 1024), SMALL_MIB (default 50), SMALL_COUNT (default 8), TINY_KIB (default 4),
# TINY_COUNT (default 16), PUSH_RUNS (default 3), PARTS (default "get push": which parts to run).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
LARGE_MIB=${LARGE_MIB:-1024}
SMALL_MIB=${SMALL_MIB:-50}
SMALL_COUNT=${SMALL_COUNT:-8}
TINY_KIB=${TINY_KIB:-4}
TINY_COUNT=${TINY_COUNT:-16}
PUSH_RUNS=${PUSH_RUNS:-3}
PARTS=${PARTS:-get push}

need=()
for pair in wrk:wrk nginx:nginx-light docker-registry:docker-registry containerd:containerd curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --quiet

work=$(mktemp -d /tmp/registry-load.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no response from $1" >&2; exit 1; }

# Sums user and system CPU ticks of the given PIDs.
cpu_ticks() { local total=0; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
# Sums the anonymous resident memory of the given PIDs. File pages of mapped blobs are page cache
# shared with every reader, so RssAnon, not VmRSS, is the memory a server adds per response.
anon_rss_kib() { local total=0; for pid in "$@"; do total=$((total + $(awk '/RssAnon/ {print $2}' "/proc/$pid/status"))); done; echo "$total"; }
# Samples anon_rss_kib every 0.2 s until the file $1 appears, then writes the maximum to $1.max.
sample_rss() { local stop=$1 max=0 now; shift; while [ ! -e "$stop" ]; do now=$(anon_rss_kib "$@"); [ "$now" -gt "$max" ] && max=$now; sleep 0.2; done; echo "$max" >"$stop.max"; }
hz=$(getconf CLK_TCK)

echo "== setting up in $work"
mkdir -p "$work/containerd/root" "$work/containerd/state"
cat >"$work/containerd/config.toml" <<TOML
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd/containerd.sock"
[ttrpc]
  address = "$work/containerd/containerd.sock.ttrpc"
TOML
containerd --config "$work/containerd/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!; pids+=("$containerd_pid")
for _ in $(seq 1 100); do ctr --address "$work/containerd/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
content_dir="$work/containerd/root/io.containerd.content.v1.content"

start_registry() { # name fastpath
  local port; port=$(free_port)
  cat >"$work/$1.yml" <<YAML
log:
  level: warn
http:
  addr: 127.0.0.1:$port
storage:
  containerd:
    address: $work/containerd/containerd.sock
    namespace: load
    fastpath: $2
YAML
  target/release/containerd-registry serve "$work/$1.yml" >"$work/$1.log" 2>&1 &
  pids+=("$!")
  eval "${1}_pid=$!; ${1}_port=$port"
  wait_http "http://127.0.0.1:$port/v2/"
}
start_registry sendfile sendfile
start_registry mmap mmap
start_registry iouring iouring
start_registry grpc off

dist_port=$(free_port)
cat >"$work/distribution.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/distribution
http:
  addr: 127.0.0.1:$dist_port
YAML
docker-registry serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
distribution_pid=$!; pids+=("$distribution_pid")
wait_http "http://127.0.0.1:$dist_port/v2/"

echo "== making blobs: one of $LARGE_MIB MiB, $SMALL_COUNT of $SMALL_MIB MiB, $TINY_COUNT of $TINY_KIB KiB"
head -c "$((LARGE_MIB * 1024 * 1024))" /dev/urandom >"$work/large"
for i in $(seq 1 "$SMALL_COUNT"); do head -c "$((SMALL_MIB * 1024 * 1024))" /dev/urandom >"$work/small$i"; done
for i in $(seq 1 "$TINY_COUNT"); do head -c "$((TINY_KIB * 1024))" /dev/urandom >"$work/tiny$i"; done

# Opens an upload session and sends the whole blob in its closing PUT, which both registries accept.
push_monolithic() { # base-url repo file -> digest
  local digest location separator="?"
  digest="sha256:$(sha256sum "$3" | cut -d' ' -f1)"
  location=$(curl -sf -o /dev/null -D - -X POST "$1/v2/$2/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r') || return 1
  case $location in http*) ;; *) location="$1$location" ;; esac
  case $location in *\?*) separator="&" ;; esac
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$3" "$location${separator}digest=$digest" || return 1
  echo "$digest"
}
large_digest=$(push_monolithic "http://127.0.0.1:$sendfile_port" load/app "$work/large")
push_monolithic "http://127.0.0.1:$dist_port" load/app "$work/large" >/dev/null
small_digests=()
for i in $(seq 1 "$SMALL_COUNT"); do
  small_digests+=("$(push_monolithic "http://127.0.0.1:$sendfile_port" load/app "$work/small$i")")
  push_monolithic "http://127.0.0.1:$dist_port" load/app "$work/small$i" >/dev/null
done
tiny_digests=()
for i in $(seq 1 "$TINY_COUNT"); do
  tiny_digests+=("$(push_monolithic "http://127.0.0.1:$sendfile_port" load/app "$work/tiny$i")")
  push_monolithic "http://127.0.0.1:$dist_port" load/app "$work/tiny$i" >/dev/null
done

# nginx serves the same files from containerd's content directory.
nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
user root;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  server {
    listen 127.0.0.1:$nginx_port;
    location /blobs/ { alias $content_dir/blobs/; }
  }
}
CONF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_master=$!; pids+=("$nginx_master")
sleep 0.5
nginx_pids() { echo "$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')"; }

# Warm the page cache.
cat "$content_dir"/blobs/sha256/* >/dev/null
cat "$work/distribution/docker/registry/v2/blobs/sha256"/*/*/data >/dev/null

url_of() { # system digest -> URL
  local hex=${2#sha256:}
  case $1 in
    nginx) echo "http://127.0.0.1:$nginx_port/blobs/sha256/$hex" ;;
    distribution) echo "http://127.0.0.1:$dist_port/v2/load/app/blobs/$2" ;;
    sendfile) echo "http://127.0.0.1:$sendfile_port/v2/load/app/blobs/$2" ;;
    mmap) echo "http://127.0.0.1:$mmap_port/v2/load/app/blobs/$2" ;;
    iouring) echo "http://127.0.0.1:$iouring_port/v2/load/app/blobs/$2" ;;
    grpc) echo "http://127.0.0.1:$grpc_port/v2/load/app/blobs/$2" ;;
  esac
}
server_pids() {
  case $1 in
    nginx) nginx_pids ;;
    distribution) echo "$distribution_pid" ;;
    sendfile) echo "$sendfile_pid $containerd_pid" ;;
    mmap) echo "$mmap_pid $containerd_pid" ;;
    iouring) echo "$iouring_pid $containerd_pid" ;;
    grpc) echo "$grpc_pid $containerd_pid" ;;
  esac
}

# wrk script that rotates over the paths of the small or the tiny blobs.
write_rotation() { # system set -> lua file
  local file="$work/rotate-$1-$2.lua" digests
  if [ "$2" = tiny ]; then digests=("${tiny_digests[@]}"); else digests=("${small_digests[@]}"); fi
  {
    echo "paths = {"
    for digest in "${digests[@]}"; do
      local url; url=$(url_of "$1" "$digest"); echo "  \"/${url#http://*/}\","
    done
    echo "}"
    echo 'i = 0'
    echo 'request = function() i = i % #paths + 1; return wrk.format("GET", paths[i]) end'
  } >"$file"
  echo "$file"
}

to_bytes() { # wrk size like 12.34GB -> bytes
  python3 -c "import re,sys; m=re.match(r'([0-9.]+)([KMGT]?B)', sys.argv[1]); u={'B':1,'KB':1024,'MB':1024**2,'GB':1024**3,'TB':1024**4}[m.group(2)]; print(int(float(m.group(1))*u))" "$1"
}

results="$work/results.tsv"
run_load() { # system set connections
  local system=$1 set=$2 conns=$3 url script=() threads=1
  [ "$conns" -gt 1 ] && threads=2
  if [ "$set" = large ]; then url=$(url_of "$system" "$large_digest"); else url=$(url_of "$system" "${small_digests[0]}"); script=(-s "$(write_rotation "$system" "$set")"); fi
  local pids_now; read -r -a pids_now <<<"$(server_pids "$system")"
  local idle_rss; idle_rss=$(anon_rss_kib "${pids_now[@]}")
  local stop="$work/sampling-$system-$set-$conns"
  sample_rss "$stop" "${pids_now[@]}" &
  local sampler=$!
  local before; before=$(cpu_ticks "${pids_now[@]}")
  local out; out=$(wrk -t "$threads" -c "$conns" -d "${DURATION}s" --timeout 60s "${script[@]}" "$url")
  local after; after=$(cpu_ticks "${pids_now[@]}")
  touch "$stop"
  wait "$sampler"
  local read_text; read_text=$(echo "$out" | awk '/requests in/ {print $(NF-1)}')
  local requests; requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local seconds; seconds=$(echo "$out" | awk '/requests in/ {sub(/s,$/, "", $4); print $4}')
  local errors; errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  local bytes; bytes=$(to_bytes "$read_text")
  local peak_rss; peak_rss=$(cat "$stop.max")
  python3 - "$system" "$set" "$conns" "$bytes" "$seconds" "$((after - before))" "$hz" "$peak_rss" "$idle_rss" "$requests" "$errors" >>"$results" <<'PY'
import sys
system, blob_set, conns, nbytes, seconds, ticks, hz, rss, idle, requests, errors = sys.argv[1:]
nbytes, seconds, ticks, hz, requests = int(nbytes), float(seconds), int(ticks), int(hz), int(requests)
gib = nbytes / 1024**3
mibs = nbytes / 1024**2 / seconds
cpu = ticks / hz
per_request_us = cpu / requests * 1e6 if requests else float('nan')
print(f"{system}\t{blob_set}\t{conns}\t{mibs:.0f}\t{(cpu / gib) if gib else float('nan'):.3f}\t{int(rss) / 1024:.1f}\t{(int(rss) - int(idle)) / 1024:.1f}\t{requests / seconds:.0f}\t{per_request_us:.1f}\t{errors.strip()}")
PY
}

if [[ " $PARTS " == *" get "* ]]; then
echo "== GET load, ${DURATION}s per run"
for set in large small tiny; do
  for conns in 1 16; do
    for system in nginx sendfile mmap iouring grpc distribution; do
      run_load "$system" "$set" "$conns"
    done
  done
done

python3 - "$results" "$LARGE_MIB" "$SMALL_COUNT" "$SMALL_MIB" "$TINY_COUNT" "$TINY_KIB" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
names = {"nginx": "nginx sendfile", "sendfile": "registry sendfile (default)", "mmap": "registry mmap", "iouring": "registry io_uring", "grpc": "registry fastpath off (gRPC)", "distribution": "Docker Distribution"}
sets = {"large": f"1 blob of {sys.argv[2]} MiB", "small": f"{sys.argv[3]} blobs of {sys.argv[4]} MiB", "tiny": f"{sys.argv[5]} blobs of {sys.argv[6]} KiB"}
print()
print(f"{'blobs':<20} {'conns':>5}  {'system':<30} {'MiB/s':>7} {'x nginx':>8} {'CPU s/GiB':>10} {'x nginx':>8} {'anon RSS MiB':>13} {'added':>6} {'req/s':>8} {'CPU us/req':>10}")
for blob_set in ("large", "small", "tiny"):
    for conns in ("1", "16"):
        group = [r for r in rows if r[1] == blob_set and r[2] == conns]
        base = next(r for r in group if r[0] == "nginx")
        for r in group:
            tput, cpu = float(r[3]), float(r[4])
            ratio_t = tput / float(base[3]) if float(base[3]) else float("nan")
            ratio_c = cpu / float(base[4]) if float(base[4]) else float("nan")
            note = f"  {r[9]}" if len(r) > 9 and r[9] else ""
            print(f"{sets[blob_set]:<20} {conns:>5}  {names[r[0]]:<30} {tput:>7.0f} {ratio_t:>8.2f} {cpu:>10.3f} {ratio_c:>8.2f} {r[5]:>13} {r[6]:>6} {r[7]:>8} {r[8]:>10}{note}")
PY
fi
[[ " $PARTS " == *" push "* ]] || exit 0

echo
echo "== push of a $LARGE_MIB MiB blob, median of $PUSH_RUNS runs (fresh bytes each run)"
variant() { # n -> file with the large blob's bytes, first 16 bytes made unique
  cp "$work/large" "$work/push$1"
  printf '%016d' "$1" | dd of="$work/push$1" bs=16 count=1 conv=notrunc status=none
  echo "$work/push$1"
}
# Prints the seconds a command took; fails, without a time, when the command fails.
time_it() {
  local start end; start=$(date +%s.%N)
  "$@" >/dev/null || { echo "failed: $*" >&2; return 1; }
  end=$(date +%s.%N); python3 -c "print(f'{$end - $start:.3f}')"
}
# Resolves a Location header value, absolute or a path, against the registry's base URL.
resolve() { case $2 in http*) echo "$2" ;; *) echo "$1$2" ;; esac; }
push_chunked() { # base repo file
  local location digest offset=0 size chunk=$((16 * 1024 * 1024))
  size=$(stat -c %s "$3")
  digest="sha256:$(sha256sum "$3" | cut -d' ' -f1)"
  location=$(curl -sf -o /dev/null -D - -X POST "$1/v2/$2/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r') || return 1
  while [ "$offset" -lt "$size" ]; do
    local end=$((offset + chunk < size ? offset + chunk : size))
    location=$(dd if="$3" bs=1M skip="$offset" count="$((end - offset))" iflag=skip_bytes,count_bytes status=none |
      curl -sf -o /dev/null -D - -X PATCH -T - -H "Content-Length: $((end - offset))" \
        -H "Content-Range: $offset-$((end - 1))" -H 'Content-Type: application/octet-stream' "$(resolve "$1" "$location")" |
      awk 'tolower($1)=="location:" {print $2}' | tr -d '\r') || return 1
    offset=$end
  done
  local separator="?"
  case $location in *\?*) separator="&" ;; esac
  curl -sf -o /dev/null -X PUT "$(resolve "$1" "$location")${separator}digest=$digest"
}
ingest() { ctr --address "$work/containerd/containerd.sock" -n load content ingest --expected-digest "sha256:$(sha256sum "$1" | cut -d' ' -f1)" --expected-size "$(stat -c %s "$1")" "bench-$RANDOM-$RANDOM" <"$1"; }

n=100
declare -A push_times
for kind in ctr monolithic chunked; do
  times=()
  for _ in $(seq 1 "$PUSH_RUNS"); do
    n=$((n + 1)); file=$(variant "$n"); cat "$file" >/dev/null
    case $kind in
      ctr) seconds=$(time_it ingest "$file") ;;
      monolithic) seconds=$(time_it push_monolithic "http://127.0.0.1:$sendfile_port" load/push "$file") ;;
      chunked) seconds=$(time_it push_chunked "http://127.0.0.1:$sendfile_port" load/push "$file") ;;
    esac
    times+=("$seconds")
    rm -f "$file"
  done
  push_times[$kind]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
done
python3 - "${push_times[ctr]}" "${push_times[monolithic]}" "${push_times[chunked]}" "$LARGE_MIB" <<'PY'
import sys
ctr, mono, chunked, mib = map(float, sys.argv[1:])
print(f"{'method':<36} {'seconds':>8} {'MiB/s':>7} {'x ctr ingest':>13}")
for name, t in (("ctr content ingest", ctr), ("registry monolithic POST", mono), ("registry chunked PATCH, 16 MiB", chunked)):
    print(f"{name:<36} {t:>8.2f} {mib / t:>7.0f} {ctr / t:>13.2f}")
PY
