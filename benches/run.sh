#!/usr/bin/env bash
# Benchmark: Portcullis vs nginx as a plain reverse proxy, same machine, same run.
#
# Both proxies forward to one tiny nginx upstream (`return 200 "ok\n"`) on loopback;
# wrk drives each in turn. Prints a table and the portcullis/nginx ratios, and writes
# the same numbers to benches/out/latest.json. This is a benchmark, not a test: it never
# fails on slow numbers, only when something does not start or answer.
#
# Usage: benches/run.sh [--peer-only]
#   --peer-only   measure only the nginx proxy (no cargo build, no portcullis)
# Environment (defaults in brackets):
#   WORKERS [1]         nginx worker_processes and portcullis server.threads
#   DURATION [10s]      length of each measured wrk run (wrk syntax: 10s, 1m)
#   ROUNDS [1]          measured runs per proxy; the order alternates each round
#   WARMUP [2s]         unmeasured wrk run before each proxy's first measurement (0 = none)
#   THREADS [2]         wrk threads
#   CONNECTIONS [32]    wrk connections
#   PORTCULLIS_BIN      use this binary instead of running `cargo build --release`
#   ACCESS_LOG [0]      1 = both proxies write an access log (to a file); 0 = neither does
#   PLUGINS [0]         1 = portcullis runs the shipped deny-paths and security-headers scripts
#   KEEP_TMP [0]        1 = keep the temp dir (configs and logs) after exit
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="$ROOT/benches/out"

WORKERS=${WORKERS:-1}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
KEEP_TMP=${KEEP_TMP:-0}
ACCESS_LOG=${ACCESS_LOG:-0}
PLUGINS=${PLUGINS:-0}

PEER_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --peer-only) PEER_ONLY=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "bench: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# "10s" / "2m" / "1h" / "15" -> whole seconds; used to bound each wrk run with `timeout`.
to_seconds() {
  local v=$1
  case "$v" in
    *s) echo "${v%s}" ;;
    *m) echo $((${v%m} * 60)) ;;
    *h) echo $((${v%h} * 3600)) ;;
    *) echo "$v" ;;
  esac
}

for var in WORKERS ROUNDS THREADS CONNECTIONS; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, got '${!var}'"
done
for var in DURATION WARMUP; do
  [[ ${!var} =~ ^[0-9]+[smh]?$ ]] || die "$var must look like 10s, 2m or 15, got '${!var}'"
done
[[ $ACCESS_LOG == [01] ]] || die "ACCESS_LOG must be 0 or 1, got '$ACCESS_LOG'"
[[ $(to_seconds "$DURATION") -gt 0 ]] || die "DURATION must be longer than 0"

# --- tools -------------------------------------------------------------------------------
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  log "nginx or wrk missing; running scripts/install-deps.sh"
  bash "$ROOT/scripts/install-deps.sh"
fi
for tool in nginx wrk curl python3 timeout; do
  command -v "$tool" >/dev/null || die "'$tool' is required but not installed"
done

# --- portcullis binary (built before anything runs, so the build never competes with load) --
PORTCULLIS=""
if ((!PEER_ONLY)); then
  if [[ -n ${PORTCULLIS_BIN:-} ]]; then
    PORTCULLIS=$PORTCULLIS_BIN
  else
    log "building portcullis (cargo build --release)"
    (cd "$ROOT" && cargo build --release) >&2
    PORTCULLIS="${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis"
  fi
  [[ -x $PORTCULLIS ]] || die "portcullis binary '$PORTCULLIS' does not exist or is not executable"
fi

# --- temp dir and cleanup ----------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")
# nginx workers may run as another user (nobody when started as root) and must reach the
# temp paths below.
chmod 0755 "$TMP"
PIDS=()
declare -A STOP_SIGNAL=() # pid -> signal for a fast stop, when it is not TERM

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${PIDS[@]}"; do
    kill -"${STOP_SIGNAL[$pid]:-TERM}" "$pid" 2>/dev/null || true
  done
  # Give each process up to ~5 s to exit on TERM, then KILL it.
  for pid in "${PIDS[@]}"; do
    local tries=50
    while kill -0 "$pid" 2>/dev/null && ((tries-- > 0)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((status != 0)); then
    local f
    for f in "$TMP"/*.log; do
      [[ -s $f ]] || continue
      log "last lines of $f:"
      tail -n 20 "$f" >&2 || true
    done
  fi
  if [[ $KEEP_TMP == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports: bind them all at once so that they are distinct, then release them -------------
read -r PORT_UPSTREAM PORT_NGINX PORT_PORTCULLIS < <(
  python3 - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
) || die "could not pick free ports"

# --- configs -----------------------------------------------------------------------------
# Per-instance prefix dir holding pid file and nginx's temp paths, so nothing touches /var.
nginx_common() { # $1 = instance name, $2 = worker count
  local dir="$TMP/$1"
  mkdir -p "$dir"
  cat <<EOF
daemon off;
master_process on;
worker_processes $2;
pid $dir/nginx.pid;
error_log $TMP/$1.log warn;
events { worker_connections 4096; }
EOF
}

nginx_http_common() { # $1 = instance name, $2 = access log on (1) or off (0)
  local dir="$TMP/$1" access_log=off
  if [[ ${2:-0} == 1 ]]; then access_log="$TMP/$1-access.log"; fi
  cat <<EOF
  access_log $access_log;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  # wrk reuses its connections for the whole run; nginx's default of 1000 requests per
  # connection would make nginx (not portcullis) reconnect all the time.
  keepalive_requests 1000000;
EOF
}

{
  nginx_common upstream 1
  echo "http {"
  nginx_http_common upstream
  cat <<EOF
  server {
    listen 127.0.0.1:$PORT_UPSTREAM;
    location / { return 200 "ok\n"; }
  }
}
EOF
} >"$TMP/upstream.conf"

{
  nginx_common nginx "$WORKERS"
  echo "http {"
  nginx_http_common nginx "$ACCESS_LOG"
  cat <<EOF
  upstream u {
    server 127.0.0.1:$PORT_UPSTREAM;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$PORT_NGINX;
    location / {
      proxy_pass http://u;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
} >"$TMP/nginx.conf"

cat >"$TMP/portcullis.yaml" <<EOF
server:
  threads: $WORKERS
listen:
  - address: "127.0.0.1:$PORT_PORTCULLIS"
metrics: { enabled: false }
upstreams_file: upstreams.yaml
routes:
  - { prefix: /, upstream: bench }
EOF
if [ "$PLUGINS" = 1 ]; then
  cat >>"$TMP/portcullis.yaml" <<EOF
plugins:
  - script: $ROOT/plugins/deny-paths.lua
  - script: $ROOT/plugins/security-headers.lua
EOF
fi

cat >"$TMP/upstreams.yaml" <<EOF
upstreams:
  bench:
    backends: ["127.0.0.1:$PORT_UPSTREAM"]
EOF

# --- servers -----------------------------------------------------------------------------
start_nginx() { # $1 = instance name
  nginx -p "$TMP/$1" -c "$TMP/$1.conf" -e "$TMP/$1.log" >"$TMP/$1.stdout.log" 2>&1 &
  PIDS+=($!)
}

# Poll until $2 answers 200 with "ok"; fail fast if the process died, give up after ~15 s.
wait_ready() { # $1 = name, $2 = url, $3 = pid
  local tries=150 body
  while ((tries-- > 0)); do
    if ! kill -0 "$3" 2>/dev/null; then
      die "$1 exited before it answered on $2"
    fi
    if body=$(curl -fsS --max-time 1 "$2" 2>/dev/null) && [[ $body == ok ]]; then
      log "$1 is up on $2"
      return 0
    fi
    sleep 0.1
  done
  die "$1 did not answer 200 \"ok\" on $2 within 15 s"
}

start_nginx upstream
wait_ready upstream "http://127.0.0.1:$PORT_UPSTREAM/" "${PIDS[-1]}"

start_nginx nginx
wait_ready nginx "http://127.0.0.1:$PORT_NGINX/" "${PIDS[-1]}"

if ((!PEER_ONLY)); then
  # Portcullis logs one access line per request at info level (target `access`); keep that
  # off like nginx's unless ACCESS_LOG=1, so both proxies do the same work.
  if [[ $ACCESS_LOG == 1 ]]; then
    export PORTCULLIS_LOG=${PORTCULLIS_LOG:-info}
  else
    export PORTCULLIS_LOG=${PORTCULLIS_LOG:-info,access=off}
  fi
  "$PORTCULLIS" run --config "$TMP/portcullis.yaml" >"$TMP/portcullis.log" 2>&1 &
  PIDS+=($!)
  # SIGTERM is Pingora's graceful stop (a grace period, then a drain); SIGINT stops at once.
  STOP_SIGNAL[$!]=INT
  wait_ready portcullis "http://127.0.0.1:$PORT_PORTCULLIS/" "${PIDS[-1]}"
fi

# --- load --------------------------------------------------------------------------------
# wrk prints latencies as e.g. 812.00us, 1.53ms, 2.01s, 1.20m.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "ms") n = n; else if (u == "s") n *= 1000;
    else if (u == "m") n *= 60000; else if (u == "h") n *= 3600000;
    else { print "bad latency unit: " v > "/dev/stderr"; exit 1 }
    printf "%.3f\n", n
  }'
}

WRK_TIMEOUT_EXTRA=30

run_wrk() { # $1 = url, $2 = duration, $3 = output file
  local secs
  secs=$(to_seconds "$2")
  timeout -k 5 $((secs + WRK_TIMEOUT_EXTRA)) \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency "$1" >"$3" 2>&1 ||
    {
      cat "$3" >&2
      die "wrk failed against $1"
    }
}

RESULTS="$TMP/results.tsv"
: >"$RESULTS"

measure() { # $1 = round, $2 = name, $3 = port
  local url="http://127.0.0.1:$3/" out="$TMP/wrk-$2-$1.txt" rps p99raw p99 errors
  run_wrk "$url" "$DURATION" "$out"
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p99raw=$(awk '$1 == "99%" { print $2 }' "$out")
  [[ -n $rps && -n $p99raw ]] || {
    cat "$out" >&2
    die "could not parse wrk output for $2"
  }
  p99=$(to_ms "$p99raw")
  # A proxy that answers errors fast must not look good: count them and say so.
  errors=$(awk '
    /Non-2xx or 3xx responses:/ { n += $NF }
    /Socket errors:/ { gsub(/,/, ""); for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) n += $i }
    END { print n + 0 }' "$out")
  ((errors == 0)) || log "warning: $2 round $1 had $errors errors (see wrk output below)"
  ((errors == 0)) || cat "$out" >&2
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" "$p99" "$errors" >>"$RESULTS"
  log "round $1 $2: $rps req/s, p99 $p99 ms"
}

declare -A PORT_OF=([nginx]=$PORT_NGINX [portcullis]=$PORT_PORTCULLIS)
NAMES=(nginx)
((PEER_ONLY)) || NAMES+=(portcullis)

if [[ $(to_seconds "$WARMUP") -gt 0 ]]; then
  for name in "${NAMES[@]}"; do
    log "warm-up $name ($WARMUP)"
    run_wrk "http://127.0.0.1:${PORT_OF[$name]}/" "$WARMUP" "$TMP/wrk-$name-warmup.txt"
  done
fi

for ((round = 1; round <= ROUNDS; round++)); do
  # Alternate the order (A B, B A, ...) so neither proxy always runs on a warmer machine.
  order=("${NAMES[@]}")
  if ((round % 2 == 0 && ${#NAMES[@]} == 2)); then order=("${NAMES[1]}" "${NAMES[0]}"); fi
  for name in "${order[@]}"; do
    measure "$round" "$name" "${PORT_OF[$name]}"
  done
done

# --- report ------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
nginx_version=$(nginx -v 2>&1 | sed 's|^nginx version: ||')

BENCH_COMMIT=$commit BENCH_NGINX_VERSION=$nginx_version BENCH_PEER_ONLY=$PEER_ONLY \
  WORKERS=$WORKERS DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP THREADS=$THREADS \
  CONNECTIONS=$CONNECTIONS ACCESS_LOG=$ACCESS_LOG python3 - "$RESULTS" "$OUT_DIR/latest.json" <<'PY'
import datetime
import json
import os
import sys
from statistics import mean

results_path, json_path = sys.argv[1], sys.argv[2]
env = os.environ
rounds = int(env["ROUNDS"])
runs = []
with open(results_path) as f:
    for line in f:
        rnd, name, rps, p99, errors = line.rstrip("\n").split("\t")
        runs.append({"round": int(rnd), "name": name, "requests_per_sec": float(rps),
                     "p99_ms": float(p99), "errors": int(errors)})

names = []
for r in runs:
    if r["name"] not in names:
        names.append(r["name"])
summary = {}
for n in names:
    mine = [r for r in runs if r["name"] == n]
    summary[n] = {"requests_per_sec": round(mean(r["requests_per_sec"] for r in mine), 2),
                  "p99_ms": round(mean(r["p99_ms"] for r in mine), 3),
                  "errors": sum(r["errors"] for r in mine)}

ratios = {"requests_per_sec": None, "p99": None}
if "nginx" in summary and "portcullis" in summary:
    ng, pc = summary["nginx"], summary["portcullis"]
    ratios["requests_per_sec"] = round(pc["requests_per_sec"] / ng["requests_per_sec"], 3)
    ratios["p99"] = round(pc["p99_ms"] / ng["p99_ms"], 3) if ng["p99_ms"] > 0 else None

if len(runs) > len(names):
    print(f"{'round':<6} {'name':<12} {'req/s':>12} {'p99 ms':>9} {'errors':>7}")
    for r in runs:
        print(f"{r['round']:<6} {r['name']:<12} {r['requests_per_sec']:>12.1f} "
              f"{r['p99_ms']:>9.3f} {r['errors']:>7}")
    print()
label = f"mean of {rounds} rounds" if rounds > 1 else ""
print(f"{'name':<12} {'req/s':>12} {'p99 ms':>9} {'errors':>7}  {label}".rstrip())
for n in names:
    s = summary[n]
    print(f"{n:<12} {s['requests_per_sec']:>12.1f} {s['p99_ms']:>9.3f} {s['errors']:>7}")
if ratios["requests_per_sec"] is not None:
    print(f"ratio portcullis/nginx req/s: {ratios['requests_per_sec']:.2f}")
    p = ratios["p99"]
    print(f"ratio p99: {p:.2f}" if p is not None else "ratio p99: n/a")
failed = [n for n in names if summary[n]["errors"]]
if failed:
    print(f"WARNING: {', '.join(failed)} answered errors: these numbers are not comparable")

doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "commit": env["BENCH_COMMIT"],
    "nginx_version": env["BENCH_NGINX_VERSION"],
    "params": {"workers": int(env["WORKERS"]), "duration": env["DURATION"], "rounds": rounds,
               "warmup": env["WARMUP"], "wrk_threads": int(env["THREADS"]),
               "connections": int(env["CONNECTIONS"]),
               "access_log": env["ACCESS_LOG"] == "1",
               "peer_only": env["BENCH_PEER_ONLY"] == "1"},
    "runs": runs,
    "summary": summary,
    "ratio_portcullis_over_nginx": ratios,
}
with open(json_path, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
PY
log "wrote ${OUT_DIR#"$ROOT"/}/latest.json"
