#!/usr/bin/env bash
# `make bench-proxy`: proxy throughput, side by side in one run, on this machine.
#
# The same backend (ops/bench/backend: a tuned Go server answering a ~200-byte JSON body) is loaded
#   1. directly,
#   2. through nginx as a plain reverse proxy with upstream keep-alive (Debian's nginx, installed
#      with apt-get if missing; worker_processes = CPUs),
#   3. through the Ragplane proxy built from the working tree, with JWT verification, rate limits
#      and the concurrency cap on (one tenant with very high limits, the backend registered as the
#      only worker with the control plane),
#   4. through the Ragplane proxy built from BASELINE_REV (default 725903f, before issue 8), as a
#      second proxy on the same control plane, so before/after ratios come from one run.
# with wrk (Debian's, installed if missing): CONNECTIONS connections, THREADS threads, DURATION
# seconds, RUNS rounds (paths interleaved, medians reported), counting every non-2xx response with
# a Lua script, and the CPU time (utime+stime from /proc) of the proxy process and of the Redis
# server per request. Then a constant-rate load (ops/bench/loadgen, open loop) at half of each
# proxy's measured max rps against direct and against that proxy: the p50 the proxy adds.
#
# Prints a Markdown report and writes it to BENCH_OUT (default .ragplane/bench/proxy-<time>.md);
# logs and raw wrk outputs go to .ragplane/bench/proxy-<time>/. Uses the local stack (`make up`,
# called here; left running), a catalog database of its own (ragplane_proxybench, made fresh each
# run), free loopback ports, and stops everything it started on exit.
#
#   DURATION=10 RUNS=3 CONNECTIONS=64 THREADS=2   wrk settings
#   HALF_DURATION=$DURATION                       seconds of each half-load run
#   BASELINE_REV=725903f                          git revision of the baseline proxy; empty: none
#   BENCH_PATHS="direct nginx ragplane baseline"  which paths to measure
#   BENCH_URL_PATH=/v1/documents?limit=1          request path (the backend answers any)
#   BENCH_OUT=.ragplane/bench/proxy-<time>.md     report file
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
HALF_DURATION=${HALF_DURATION:-$DURATION}
BASELINE_REV=${BASELINE_REV-725903f}
BENCH_PATHS=${BENCH_PATHS:-direct nginx ragplane baseline}
BENCH_URL_PATH=${BENCH_URL_PATH:-/v1/documents?limit=1}
stamp=$(date +%Y%m%d-%H%M%S)
BENCH_OUT=${BENCH_OUT:-.ragplane/bench/proxy-$stamp.md}
logs=.ragplane/bench/proxy-$stamp
[ -n "$BASELINE_REV" ] || BENCH_PATHS=${BENCH_PATHS//baseline/}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-proxy: %s\n' "$*" >&2; exit 1; }
has_path() { case " $BENCH_PATHS " in *" $1 "*) return 0 ;; esac; return 1; }

mkdir -p "$logs" "$(dirname "$BENCH_OUT")" .ragplane/bench/bin
tmp=$(mktemp -d /tmp/ragplane-bench.XXXXXX)

# --- processes: started in order, stopped in reverse (proxies before the backend, so it
# deregisters while the control plane still runs; the control plane last).
pids=()
names=()
cleanup() {
  local status=$? i pid
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
    say "stopped ${names[$i]}"
  done
  rm -rf "$tmp"
  [ "$status" -eq 0 ] || printf 'bench-proxy failed (exit %s); logs in %s\n' "$status" "$logs" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME LOG CMD...: runs CMD in the background (its own pid, not a subshell's).
start() {
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  names+=("$name")
}
last_pid() { echo "${pids[${#pids[@]} - 1]}"; }

# wait_http URL PID LOG: waits up to 60 s for URL to answer 2xx while PID lives.
wait_http() {
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$3" >&2; die "process $2 exited; see $3"; }
    sleep 0.1
  done
  tail -20 "$3" >&2
  die "$1 did not answer within 60 s; see $3"
}

# free_port: a loopback port nobody listens on, below the ephemeral range, not handed out yet.
free_port() {
  local p
  for _ in $(seq 1 500); do
    p=$((20000 + RANDOM % 12000))
    grep -qx "$p" "$tmp/ports" 2>/dev/null && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && continue
    echo "$p" >>"$tmp/ports"
    echo "$p"
    return 0
  done
  die "no free port found"
}

# ensure_pkg COMMAND PACKAGE: installs Debian's PACKAGE with apt-get if COMMAND is missing.
ensure_pkg() {
  command -v "$1" >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "$1 is missing; install it (apt-get install $2) or run as root"
  command -v apt-get >/dev/null || die "$1 is missing and there is no apt-get to install it"
  say "installing $2 with apt-get (once)"
  local log=$repo/$logs/apt-$2.log
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >"$log" 2>&1 ||
    { apt-get update >>"$log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >>"$log" 2>&1; }; } ||
    die "could not install $2 with apt-get; see $log"
  command -v "$1" >/dev/null || die "apt-get installed $2 but $1 is not on PATH"
  # Debian's nginx starts a system-wide server on :80 when installed; this script runs its own.
  if [ "$2" = nginx ] && [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
    say "stopping the system nginx the package just started (this benchmark runs its own)"
    nginx -s quit 2>/dev/null || true
  fi
}

# cpu_ticks PID...: utime+stime of the processes, in clock ticks (0 for a missing one).
cpu_ticks() {
  local total=0 pid t
  for pid in "$@"; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
clk_tck=$(getconf CLK_TCK)

# median: the median of the numbers on stdin, one a line ("nan" if none).
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------- tools and binaries
ensure_pkg wrk wrk
has_path nginx && ensure_pkg nginx nginx
ensure_pkg jq jq

say "local stack (PostgreSQL, Redis): ops/stack.sh up"
ops/stack.sh up >"$logs/stack.log" 2>&1 || { cat "$logs/stack.log" >&2; die "ops/stack.sh up failed"; }
# shellcheck disable=SC1091
source .ragplane/stack.env

say "building the proxy under test (working tree), the backend and the load generator"
go build -o "$tmp/ragplane" ./cmd/ragplane
go build -o "$tmp/backend" ./ops/bench/backend
go build -o "$tmp/loadgen" ./ops/bench/loadgen
go build -o "$tmp/sqlexec" ./ops/sqlexec
head_rev=$(git rev-parse --short HEAD)
dirty=""
[ -z "$(git status --porcelain -- cmd proxy controlplane internal catalog ./*.go 2>/dev/null)" ] || dirty=" + uncommitted changes"

baseline_bin=""
if has_path baseline; then
  full=$(git rev-parse --verify -q "$BASELINE_REV^{commit}") || die "BASELINE_REV=$BASELINE_REV is not a commit here"
  baseline_bin=$repo/.ragplane/bench/bin/ragplane-$full
  if [ ! -x "$baseline_bin" ]; then
    say "building the baseline proxy at ${full:0:7} (git archive into a temp dir; cached in .ragplane/bench/bin)"
    mkdir -p "$tmp/baseline"
    git archive "$full" | tar -x -C "$tmp/baseline"
    (cd "$tmp/baseline" && go build -o "$baseline_bin.tmp" ./cmd/ragplane) >"$logs/baseline-build.log" 2>&1 ||
      { cat "$logs/baseline-build.log" >&2; die "could not build the baseline at $BASELINE_REV"; }
    mv "$baseline_bin.tmp" "$baseline_bin"
    rm -rf "$tmp/baseline"
  fi
fi

# Redis: the local stack's server (its pidfile), or whichever redis-server listens on REDIS_URL's port.
redis_port=$(sed -E 's#^rediss?://([^@/]*@)?[^:/]*:([0-9]+).*#\2#' <<<"$REDIS_URL")
redis_pid=""
if [ -s .ragplane/data/redis/redis.pid ] && grep -qa redis-server "/proc/$(cat .ragplane/data/redis/redis.pid)/cmdline" 2>/dev/null; then
  redis_pid=$(cat .ragplane/data/redis/redis.pid)
else
  redis_pid=$(pgrep -f "redis-server.*:$redis_port" | head -1 || true)
fi
[ -n "$redis_pid" ] || say "Redis server process not found: no Redis CPU figures"

# ---------------------------------------------------------------- the backend, directly
backend_port=$(free_port)
backend_url=http://127.0.0.1:$backend_port

# ---------------------------------------------------------------- control plane and tenant
if has_path ragplane || has_path baseline; then
  say "control plane with a catalog of its own (ragplane_proxybench)"
  server_url=$DATABASE_URL
  sql() { "$tmp/sqlexec" "$server_url" "$@"; }
  sql "drop database if exists ragplane_proxybench with (force)" >/dev/null
  for name in $(sql "select datname from pg_database where datname like 'pbench\_%'"); do
    sql "drop database if exists \"$name\" with (force)" >/dev/null
  done
  for name in $(sql "select rolname from pg_roles where rolname like 'pbench\_%'"); do
    sql "drop role if exists \"$name\"" >/dev/null
  done
  sql "create database ragplane_proxybench" >/dev/null
  admin_port=$(free_port)
  xds_port=$(free_port)
  admin_url=http://127.0.0.1:$admin_port
  # Fresh secrets for this run only.
  admin_token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  internal_key=$(head -c 48 /dev/urandom | base64 | tr -d '/+=')
  start "control plane" "$logs/controlplane.log" env \
    DATABASE_URL="${server_url%/*}/ragplane_proxybench?sslmode=disable" RAGPLANE_LOCAL_ADMIN_URL="$server_url" \
    RAGPLANE_LOCAL_PREFIX=pbench_ RAGPLANE_ADMIN_ADDR="127.0.0.1:$admin_port" RAGPLANE_XDS_ADDR="127.0.0.1:$xds_port" \
    RAGPLANE_ADMIN_TOKEN="$admin_token" RAGPLANE_SECRET_KEY="$(head -c 48 /dev/urandom | base64 | tr -d '/+=')" \
    RAGPLANE_INTERNAL_KEY="$internal_key" RAGPLANE_TOKEN_TTL=1h \
    "$tmp/ragplane" controlplane
  cp_pid=$(last_pid)
  wait_http "$admin_url/readyz" "$cp_pid" "$logs/controlplane.log"

  # admin METHOD PATH [JSON]: the admin API; prints the body, fails on an error status.
  admin() {
    local out code data=()
    [ $# -lt 3 ] || data=(--data "$3")
    out=$(curl -sS -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
      "${data[@]}" "$admin_url$2")
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    [ "$code" -lt 300 ] || die "admin API $1 $2 answered $code: $out"
    printf '%s' "$out"
  }

  say "tenant proxy_bench with very high limits"
  admin POST /v1/tenants '{"id":"proxy_bench","name":"Proxy bench","email":"bench@example.com","plan":"enterprise",
    "limits":{"requests_per_second":100000,"burst":100000,"queries_per_hour":100000000,"max_concurrent_requests":10000}}' >/dev/null
  for _ in $(seq 1 600); do
    status=$(admin GET /v1/tenants/proxy_bench | jq -r .status)
    [ "$status" = active ] && break
    [ "$status" = failed ] && die "tenant provisioning failed: $(admin GET /v1/tenants/proxy_bench)"
    sleep 0.1
  done
  [ "$status" = active ] || die "tenant not active after 60 s (status $status)"
  key=$(admin POST /v1/tenants/proxy_bench/keys '{"name":"bench"}' | jq -r .key)
  token=$(curl -fsS -X POST -H "Authorization: Bearer $key" "$admin_url/v1/auth/token" | jq -r .access_token)
  if [ -z "$token" ] || [ "$token" = null ]; then die "no token"; fi
fi
token=${token:-none}

say "backend on $backend_url${admin_url:+ (registered as the only worker)}"
if [ -n "${admin_url:-}" ]; then
  start backend "$logs/backend.log" env RAGPLANE_INTERNAL_KEY="$internal_key" \
    "$tmp/backend" -addr "127.0.0.1:$backend_port" -controlplane "$admin_url" -worker-id bench-backend
else
  start backend "$logs/backend.log" "$tmp/backend" -addr "127.0.0.1:$backend_port"
fi
backend_pid=$(last_pid)
wait_http "$backend_url/" "$backend_pid" "$logs/backend.log"

# ---------------------------------------------------------------- nginx
if has_path nginx; then
  nginx_port=$(free_port)
  ndir=$tmp/nginx
  mkdir -p "$ndir/tmp"
  cat >"$ndir/nginx.conf" <<EOF
# Generated by ops/bench/proxy.sh: a plain reverse proxy with upstream keep-alive.
daemon off;
master_process on;
worker_processes $(nproc);
worker_rlimit_nofile 65536;
pid $ndir/nginx.pid;
error_log $repo/$logs/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $ndir/tmp/body;
  proxy_temp_path $ndir/tmp/proxy;
  fastcgi_temp_path $ndir/tmp/fastcgi;
  uwsgi_temp_path $ndir/tmp/uwsgi;
  scgi_temp_path $ndir/tmp/scgi;
  keepalive_timeout 300s;
  keepalive_requests 10000000;
  upstream backend {
    server 127.0.0.1:$backend_port;
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$nginx_port backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  cp "$ndir/nginx.conf" "$logs/nginx.conf"
  start nginx "$logs/nginx.log" nginx -p "$ndir" -e "$repo/$logs/nginx-error.log" -c "$ndir/nginx.conf"
  nginx_pid=$(last_pid)
  wait_http "http://127.0.0.1:$nginx_port/" "$nginx_pid" "$logs/nginx-error.log"
fi

# ---------------------------------------------------------------- Ragplane proxies
# start_proxy NAME BINARY NODE_ID PORT: starts a proxy. Its access log is off (PROXY_ACCESS_LOG,
# default false), like nginx's here, so that both do the same work; true measures it.
start_proxy() {
  local name=$1 bin=$2 node=$3 port=$4
  start "proxy ($name)" "$logs/proxy-$name.log" env RAGPLANE_PROXY_ADDR="127.0.0.1:$port" RAGPLANE_XDS_ADDR="127.0.0.1:$xds_port" \
    RAGPLANE_NODE_ID="$node" REDIS_URL="$REDIS_URL" RAGPLANE_REDIS_PREFIX="proxybench-$$-$name:" RAGPLANE_INTERNAL_KEY="$internal_key" \
    RAGPLANE_ACCESS_LOG="${PROXY_ACCESS_LOG:-false}" "$bin" proxy
}

# wait_enforcing NAME NODE_ID PORT PID: waits up to 30 s until the control plane reports the proxy's
# ACK of every type it was sent (and no NACK), and a request with the tenant's token goes through it
# to the backend (200): the policy with the high limits, the worker and the signing key are all
# applied. Returns 1 with the reason in $why otherwise.
wait_enforcing() {
  local name=$1 node=$2 port=$3 pid=$4 code="" acks=""
  why=""
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      why="proxy $name exited: $(tail -3 "$logs/proxy-$name.log")"
      return 1
    fi
    acks=$(admin GET /v1/proxies | jq -r --arg n "$node" '
      [.items[] | select((.NodeID // .node_id) == $n) | (.Types // .types // {}) | to_entries[] |
       ((.value.AckedVersion // .value.acked_version // "") != "" and (.value.NackError // .value.nack_error // "") == "")]
      | "\(map(select(.)) | length)/\(length)"')
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port$BENCH_URL_PATH" || true)
    if [ "${acks%/*}" = "${acks#*/}" ] && [ "${acks#*/}" != 0 ] && [ "$code" = 200 ]; then
      admin GET /v1/proxies | jq -c --arg n "$node" '.items[] | select((.NodeID // .node_id) == $n)' >"$logs/proxy-$name-acks.json"
      return 0
    fi
    sleep 0.1
  done
  why="proxy $name did not ACK its configuration and forward with the tenant's token within 30 s (last status $code, types ACKed without NACK: $acks); see $logs/proxy-$name.log"
  return 1
}

if has_path ragplane; then
  proxy_port_ragplane=$(free_port)
  start_proxy ragplane "$tmp/ragplane" bench-proxy-new "$proxy_port_ragplane"
  proxy_pid_ragplane=$(last_pid)
  wait_enforcing ragplane bench-proxy-new "$proxy_port_ragplane" "$proxy_pid_ragplane" || die "$why"
  say "Ragplane proxy (working tree) on 127.0.0.1:$proxy_port_ragplane, enforcing"
fi
# The baseline is optional: an older proxy may not speak the control plane's current xDS contract.
baseline_note=""
if has_path baseline; then
  proxy_port_baseline=$(free_port)
  start_proxy baseline "$baseline_bin" bench-proxy-baseline "$proxy_port_baseline"
  proxy_pid_baseline=$(last_pid)
  if wait_enforcing baseline bench-proxy-baseline "$proxy_port_baseline" "$proxy_pid_baseline"; then
    say "Ragplane proxy (baseline ${BASELINE_REV}) on 127.0.0.1:$proxy_port_baseline, enforcing"
  else
    say "baseline skipped: $why"
    baseline_note="The baseline proxy ($BASELINE_REV) was not measured: $why"
    BENCH_PATHS=${BENCH_PATHS//baseline/}
  fi
fi

# ---------------------------------------------------------------- measuring
# url_of PATH and cpu_pids_of PATH: where each path is served, and whose CPU counts as the proxy's.
url_of() {
  case $1 in
    direct) echo "$backend_url$BENCH_URL_PATH" ;;
    nginx) echo "http://127.0.0.1:$nginx_port$BENCH_URL_PATH" ;;
    ragplane) echo "http://127.0.0.1:$proxy_port_ragplane$BENCH_URL_PATH" ;;
    baseline) echo "http://127.0.0.1:$proxy_port_baseline$BENCH_URL_PATH" ;;
  esac
}
cpu_pids_of() {
  case $1 in
    direct) ;;
    nginx) echo "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')" ;;
    ragplane) echo "$proxy_pid_ragplane" ;;
    baseline) echo "$proxy_pid_baseline" ;;
  esac
}

# The Lua script counts every response outside 2xx (wrk's own count is only of status >= 400) and
# prints one machine-readable line.
cat >"$tmp/count.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; s429 = 0; s503 = 0; s5xx = 0; s4xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 429 then s429 = s429 + 1
    elseif status == 503 then s503 = s503 + 1
    elseif status >= 500 then s5xx = s5xx + 1
    elseif status >= 400 then s4xx = s4xx + 1 end
  end
end
function done(summary, latency, requests)
  local n, a, b, c, d = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    n = n + t:get("non2xx"); a = a + t:get("s429"); b = b + t:get("s503"); c = c + t:get("s5xx"); d = d + t:get("s4xx")
  end
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d non2xx=%d s429=%d s503=%d s5xx=%d s4xx=%d sockerr=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, n, a, b, c, d, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
EOF

field() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# measure PATH ROUND: one wrk run; appends "2xx/s p50_us p99_us errors requests proxy_us redis_us s429 s503" to $tmp/PATH.runs.
measure() {
  local path=$1 round=$2 out line req dur errs rps p0 p1 r0 r1 cpu_pids
  cpu_pids=$(cpu_pids_of "$path")
  # shellcheck disable=SC2086
  p0=$(cpu_ticks $cpu_pids)
  r0=$(cpu_ticks "$redis_pid")
  out=$logs/wrk-$path-$round.txt
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency -s "$tmp/count.lua" \
    -H "Authorization: Bearer $token" "$(url_of "$path")" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $path"; }
  # shellcheck disable=SC2086
  p1=$(cpu_ticks $cpu_pids)
  r1=$(cpu_ticks "$redis_pid")
  line=$(grep '^BENCH ' "$out") || { cat "$out" >&2; die "no result line from wrk on $path"; }
  req=$(field requests "$line")
  dur=$(field duration_us "$line")
  errs=$(($(field non2xx "$line") + $(field sockerr "$line")))
  # Throughput counts 2xx responses only: a fast 503 is not served load.
  rps=$(awk -v r="$req" -v e="$errs" -v d="$dur" 'BEGIN { printf "%.1f", (r - e) / (d / 1e6) }')
  awk -v rps="$rps" -v p50="$(field p50_us "$line")" -v p99="$(field p99_us "$line")" -v errs="$errs" -v req="$req" \
    -v pc=$((p1 - p0)) -v rc=$((r1 - r0)) -v tck="$clk_tck" -v proxied="$cpu_pids" -v s429="$(field s429 "$line")" -v s503="$(field s503 "$line")" \
    'BEGIN { us = 1e6 / tck; printf "%s %s %s %s %s %s %s %s %s\n", rps, p50, p99, errs, req,
      (proxied == "" ? "nan" : (req ? pc * us / req : 0)), (req ? rc * us / req : 0), s429, s503 }' >>"$tmp/$path.runs"
  say "$(printf '%-9s round %s: %8.0f rps (2xx), p50 %s us, p99 %s us, %s errors' "$path" "$round" "$rps" "$(field p50_us "$line")" "$(field p99_us "$line")" "$errs")"
}

say "warm-up: 2 s per path"
for path in $BENCH_PATHS; do
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $token" "$(url_of "$path")" >"$logs/wrk-$path-warmup.txt" 2>&1
done
say "measuring: $RUNS rounds of ${DURATION} s per path, paths interleaved"
for round in $(seq 1 "$RUNS"); do
  for path in $BENCH_PATHS; do measure "$path" "$round"; done
done

col() { awk -v c="$2" '{ print $c }' "$tmp/$1.runs" | median; }
sum_col() { awk -v c="$2" '{ s += $c } END { print s + 0 }' "$tmp/$1.runs"; }

# ---------------------------------------------------------------- half load
# For each proxy: a constant rate of half its median max rps, against direct and through it.
half_rows=()
half_line=""
for path in $BENCH_PATHS; do
  [ "$path" = direct ] && continue
  rate=$(awk -v r="$(col "$path" 1)" 'BEGIN { r = int(r / 2); print (r < 50 ? 50 : r) }')
  say "half load of $path: $rate rps for ${HALF_DURATION} s, direct then through $path"
  loadgen_args=(-rate "$rate" -duration "${HALF_DURATION}s" -connections "$CONNECTIONS" -H "Authorization: Bearer $token")
  d=$("$tmp/loadgen" -url "$(url_of direct)" "${loadgen_args[@]}" | tee "$logs/half-$path-direct.json")
  p=$("$tmp/loadgen" -url "$(url_of "$path")" "${loadgen_args[@]}" | tee "$logs/half-$path.json")
  half_rows+=("$(jq -rn --argjson d "$d" --argjson p "$p" --arg path "$path" '
    def ms: if (. | fabs) < 10000 then (. / 1000 * 100 | round / 100 | tostring) else (. / 1000 * 10 | round / 10 | tostring) end;
    "\($path)|\($p.rate)|\($d.p50_us | ms) / \($d.p99_us | ms) ms|\($p.p50_us | ms) / \($p.p99_us | ms) ms|\(($p.p50_us - $d.p50_us) | ms) ms|\($p.non2xx + $p.errors) of \($p.requests)\(if ($p.throughput < 0.95 * $p.rate) then " (achieved \($p.throughput | round) rps)" else "" end)\(if ($d.throughput < 0.95 * $d.rate) then " (direct achieved \($d.throughput | round) rps)" else "" end)|\($d.loadgen_cpu_us_per_request // 0 | round) / \($p.loadgen_cpu_us_per_request // 0 | round) us"')")
  added=$(jq -rn --argjson d "$d" --argjson p "$p" '($p.p50_us - $d.p50_us) / 1000 * 100 | round / 100 | if . >= 0 then "+\(.)" else tostring end')
  half_line+="${half_line:+; }$path $added ms at $rate rps"
done

# ---------------------------------------------------------------- report
label_of() {
  case $1 in
    direct) echo "direct to the backend" ;;
    nginx) echo "nginx $(nginx -v 2>&1 | sed 's#.*/##'), plain reverse proxy with upstream keep-alive" ;;
    ragplane) echo "Ragplane proxy, JWT + rate limits + concurrency cap ($head_rev$dirty)" ;;
    baseline) echo "Ragplane proxy, JWT + rate limits + concurrency cap (baseline $BASELINE_REV)" ;;
  esac
}
fmt_ms() { awk -v u="$1" 'BEGIN { m = u / 1000; if (m < 10) printf "%.2f", m; else printf "%.1f", m }'; }
fmt_us() { awk -v u="$1" 'BEGIN { if (u == "nan") printf "-"; else if (u < 10) printf "%.1f us", u; else printf "%.0f us", u }'; }
fmt_k() { awk -v r="$1" 'BEGIN { if (r >= 1000) printf "%.1fk", r / 1000; else printf "%.0f", r }'; }

direct_rps=$(has_path direct && col direct 1 || echo nan)
{
  echo "## Proxy throughput, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "\`ops/bench/proxy.sh\` (DURATION=$DURATION RUNS=$RUNS CONNECTIONS=$CONNECTIONS THREADS=$THREADS): wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s,"
  echo "medians of $RUNS interleaved runs, GET $BENCH_URL_PATH answered by a Go backend with a $(curl -s "$backend_url/" | wc -c)-byte body;"
  echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), everything on this machine. rps counts 2xx responses only;"
  echo "errors are non-2xx responses and socket errors over all runs; CPU per request is utime+stime of the proxy's"
  echo "processes (nginx: master and workers) and of the Redis server, over all requests sent (Redis CPU on the"
  echo "direct and nginx rows is background: anything else using the same Redis meanwhile)."
  echo
  echo "| path | rps (ratio to direct) | p50 / p99 | errors | proxy CPU per request | Redis CPU per request |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for path in $BENCH_PATHS; do
    rps=$(col "$path" 1)
    ratio=$(awk -v r="$rps" -v d="$direct_rps" 'BEGIN { if (d == "nan" || d == 0) print "-"; else printf "%.3f", r / d }')
    errs=$(sum_col "$path" 4)
    reqs=$(sum_col "$path" 5)
    err_text=$(awk -v e="$errs" -v n="$reqs" -v a="$(sum_col "$path" 8)" -v b="$(sum_col "$path" 9)" 'BEGIN {
      if (e == 0) { print "0"; exit }
      s = sprintf("%d of %d (%.2f%%", e, n, 100 * e / n); if (a) s = s sprintf("; 429: %d", a); if (b) s = s sprintf("; 503: %d", b); print s ")" }')
    redis=$(col "$path" 7)
    [ -n "$redis_pid" ] || redis=nan
    echo "| $(label_of "$path") | $(fmt_k "$rps") ($ratio) | $(fmt_ms "$(col "$path" 2)") / $(fmt_ms "$(col "$path" 3)") ms | $err_text | $(fmt_us "$(col "$path" 6)") | $(fmt_us "$redis") |"
  done
  echo
  ratios=""
  if has_path nginx; then
    for path in ragplane baseline; do
      has_path "$path" || continue
      ratios+=$(awk -v r="$(col "$path" 1)" -v n="$(col nginx 1)" -v l="$path" 'BEGIN { printf "%s / nginx: %.3fx.", l, r / n }')" "
    done
  fi
  if has_path ragplane && has_path baseline; then
    ratios+=$(awk -v a="$(col ragplane 1)" -v b="$(col baseline 1)" 'BEGIN { printf "ragplane / baseline: %.2fx.", a / b }')
  fi
  if [ -n "$ratios" ]; then echo "Throughput ratios: ${ratios% }"; fi
  if [ ${#half_rows[@]} -gt 0 ]; then
    echo
    echo "Added latency at half load: a constant rate (ops/bench/loadgen, open loop, ${HALF_DURATION} s after 1 s of warm-up) of half"
    echo "each proxy's median max rps, sent directly and through the proxy:"
    echo
    echo "| path | rate (rps) | direct p50 / p99 | through p50 / p99 | added p50 | errors | loadgen CPU per request (direct / through) |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for row in "${half_rows[@]}"; do echo "| ${row//|/ | } |"; done
    echo
    echo "Half load: $half_line."
  fi
  if [ -n "$baseline_note" ]; then echo; echo "$baseline_note"; fi
} >"$BENCH_OUT"
cp "$BENCH_OUT" "$logs/report.md"
cat "$BENCH_OUT"
say "report: $BENCH_OUT; logs and raw wrk outputs: $logs"
