#!/usr/bin/env bash
# The local stack: real PostgreSQL 17 + pgvector and real Redis on loopback, without Docker.
#
# Debian bookworm has no pgvector package, so the servers come from a Debian trixie root made once
# with debootstrap and cached outside the clone (RAGPLANE_CACHE_DIR, default /var/cache/ragplane).
# Trixie's binaries need glibc 2.38, so they run inside that root with chroot. Their data lives under
# the project's own .ragplane/ directory, bind-mounted into the root.
#
#   ops/stack.sh up      start (idempotent) and write .ragplane/stack.env
#
# `up` also makes sure Prometheus and promtool are installed on the host (Debian bookworm's
# `prometheus` package): the dashboard and alert-rule tests run their own Prometheus server; and it
# fetches the local embedding models with ops/models.sh (once, into the same cache). It also installs
# the /docs viewer with ops/web.sh (npm ci, into the same cache) and Debian's chromium, in which the
# API reference pages are tested.
#   ops/stack.sh down    stop only what `up` started
#   ops/stack.sh status  say what runs, and in which mode
#
# Durable by default: PostgreSQL runs with fsync, synchronous_commit and full_page_writes on (its
# defaults), so a crash loses no acknowledged commit, and the services refuse to start on a server
# without them (unless RAGPLANE_ALLOW_UNDURABLE=1). Redis appends every write to its AOF, fsynced
# every second (a Redis crash loses at most about a second of rate-limit state).
#   RAGPLANE_STACK_FAST=1 ops/stack.sh up   the fast mode for tests (`make test` uses it): the three
#                                           PostgreSQL settings off; a crash may lose acknowledged
#                                           writes or corrupt the server. Never for data you keep.
# The mode lives in .ragplane/data/pg/ragplane-mode.conf. `up` in the other mode than a running
# stack's switches it in place with a reload (the three settings need no restart) and says so;
# when switching to durable it also checkpoints and syncs what the fast mode left unflushed.
#
# If DATABASE_URL (and/or REDIS_URL) is set, that server is used instead of a local one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="${RAGPLANE_STATE_DIR:-$here/.ragplane}"
cache="${RAGPLANE_CACHE_DIR:-/var/cache/ragplane}"
root="$cache/trixie-root"
mirror="${RAGPLANE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
pg_port="${RAGPLANE_PG_PORT:-55432}"
redis_port="${RAGPLANE_REDIS_PORT:-56379}"
packages="postgresql-17,postgresql-17-pgvector,redis-server"
pgbin=/usr/lib/postgresql/17/bin
case "${RAGPLANE_STACK_FAST:-}" in
  1 | true | yes) mode=fast ;;
  "" | 0 | false | no) mode=durable ;;
  *) printf 'stack: RAGPLANE_STACK_FAST: want 1 or unset, got %s\n' "$RAGPLANE_STACK_FAST" >&2; exit 1 ;;
esac
# One mount point per clone, so two clones can share the cached root.
id=$(printf '%s' "$state" | sha256sum | cut -c1-12)
inroot="/srv/ragplane/$id"

die() { printf 'stack: %s\n' "$*" >&2; exit 1; }
say() { printf 'stack: %s\n' "$*"; }

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (chroot and debootstrap need it); or set DATABASE_URL and REDIS_URL to servers you already run"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null && return
  command -v apt-get >/dev/null || die "debootstrap is missing and there is no apt-get to install it; install debootstrap, or set DATABASE_URL and REDIS_URL"
  say "installing debootstrap with apt-get"
  apt-get install -y debootstrap >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y debootstrap >/dev/null 2>&1; } ||
    die "could not install debootstrap with apt-get; install it by hand"
}

# ensure_prometheus installs Debian's prometheus package (prometheus and promtool) once; a no-op
# when both binaries are already on PATH.
ensure_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return; fi
  command -v apt-get >/dev/null || die "prometheus and promtool are missing and there is no apt-get to install them; install Prometheus 2.x and put both on PATH"
  [ "$(id -u)" = 0 ] || die "prometheus and promtool are missing; install them (apt-get install prometheus) or run as root"
  say "installing prometheus and promtool with apt-get (once)"
  local log="$state/apt-prometheus.log"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >"$log" 2>&1 ||
    { apt-get update >>"$log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >>"$log" 2>&1; }; } ||
    die "could not install prometheus with apt-get; see $log"
  # The package starts a system-wide server on :9090; the tests run their own, so stop it.
  if command -v systemctl >/dev/null && systemctl is-active -q prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  command -v prometheus >/dev/null && command -v promtool >/dev/null || die "apt-get installed prometheus but prometheus or promtool is not on PATH"
}

# ensure_chromium installs Debian's chromium once (the /docs pages are tested in it, headless); a
# no-op when it is already installed.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return
  command -v apt-get >/dev/null || die "chromium is missing and there is no apt-get to install it; install Chromium at /usr/bin/chromium"
  [ "$(id -u)" = 0 ] || die "chromium is missing; install it (apt-get install chromium) or run as root"
  say "installing chromium with apt-get (once; the /docs pages are tested in it)"
  local log="$state/apt-chromium.log"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >"$log" 2>&1 ||
    { apt-get update >>"$log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >>"$log" 2>&1; }; } ||
    die "could not install chromium with apt-get; see $log"
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
}

# ensure_root builds the trixie root once; concurrent callers wait on a lock.
ensure_root() {
  [ -f "$root/.ragplane-ready" ] && return
  ensure_debootstrap
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  if [ ! -f "$root/.ragplane-ready" ]; then
    say "building the Debian trixie root in $root (once; about a minute)"
    rm -rf "$root.tmp"
    debootstrap --variant=minbase --include="$packages" trixie "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      die "debootstrap failed; see $cache/debootstrap.log"
    rm -rf "$root"
    mv "$root.tmp" "$root"
    echo "$packages" >"$root/.ragplane-ready"
  fi
  flock -u 9
}

# ensure_mount makes .ragplane/data visible inside the root at $inroot.
ensure_mount() {
  mkdir -p "$state/data" "$root$inroot"
  if ! mountpoint -q "$root$inroot"; then
    mount --bind "$state/data" "$root$inroot" || die "cannot bind-mount $state/data into $root$inroot"
  fi
}

uid_of() { awk -F: -v u="$1" '$1==u {print $3":"$4}' "$root/etc/passwd"; }

pg_running() { chroot --userspec="$(uid_of postgres)" "$root" "$pgbin/pg_ctl" -D "$inroot/pg" status >/dev/null 2>&1; }

redis_pid() {
  local f="$state/data/redis/redis.pid"
  [ -f "$f" ] || return 1
  local p; p=$(cat "$f")
  kill -0 "$p" 2>/dev/null && [ "$(readlink "/proc/$p/root" 2>/dev/null)" = "$root" ] && echo "$p"
}

start_pg() {
  local owner; owner=$(uid_of postgres)
  [ -n "$owner" ] || die "no postgres user in $root; remove $root and run again"
  if [ ! -f "$state/data/pg/PG_VERSION" ]; then
    say "initialising PostgreSQL in $state/data/pg"
    mkdir -p "$state/data/pg"
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$state/data/pg-password"
    chmod 600 "$state/data/pg-password"
    cp "$state/data/pg-password" "$state/data/pwfile"
    chown -R "$owner" "$state/data/pg" "$state/data/pwfile"
    chmod 700 "$state/data/pg"
    chroot --userspec="$owner" "$root" "$pgbin/initdb" -D "$inroot/pg" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 --pwfile="$inroot/pwfile" >"$state/data/initdb.log" 2>&1 ||
      die "initdb failed; see $state/data/initdb.log"
    rm -f "$state/data/pwfile"
    cat >>"$state/data/pg/postgresql.conf" <<EOF
# ragplane local stack: a development and test server on loopback only.
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
max_connections = ${RAGPLANE_PG_MAX_CONNECTIONS:-300}
shared_buffers = 256MB
maintenance_work_mem = 256MB
EOF
  fi
  # The durability settings come last, from a file of their own that `up` rewrites for its mode;
  # clusters made before it existed get the include added (it overrides their earlier lines).
  grep -q "^include_if_exists = 'ragplane-mode.conf'" "$state/data/pg/postgresql.conf" ||
    printf '%s\n' "# fsync, synchronous_commit, full_page_writes: durable or fast, written by ops/stack.sh up" \
      "include_if_exists = 'ragplane-mode.conf'" >>"$state/data/pg/postgresql.conf"
  write_mode_conf "$owner"
  if pg_running; then
    say "PostgreSQL already running on 127.0.0.1:$pg_port"
    apply_mode
    return
  fi
  port_taken "$pg_port" && die "port $pg_port is taken by another process; set RAGPLANE_PG_PORT to a free port"
  touch "$state/data/pg.log" && chown "$owner" "$state/data/pg.log"
  chroot --userspec="$owner" "$root" "$pgbin/pg_ctl" -D "$inroot/pg" -l "$inroot/pg.log" -o "-p $pg_port" -w -t 60 start >/dev/null ||
    die "PostgreSQL did not start; see $state/data/pg.log"
  say "PostgreSQL 17 on 127.0.0.1:$pg_port, $(pg_mode_words "$(pg_settings)")"
}

# write_mode_conf writes the settings of $mode for PostgreSQL to read at start or reload.
write_mode_conf() {
  local f="$state/data/pg/ragplane-mode.conf" v=on
  [ "$mode" = fast ] && v=off
  cat >"$f.tmp" <<EOF
# Written by ops/stack.sh up: the $mode mode. Do not edit; RAGPLANE_STACK_FAST=1 picks the fast one.
fsync = $v
synchronous_commit = $v
full_page_writes = $v
EOF
  chown "$1" "$f.tmp"
  mv "$f.tmp" "$f"
}

pg_sql() { chroot "$root" su -s /bin/sh postgres -c "psql -h /tmp -p $pg_port -d postgres -XtAc \"$1\""; }

# pg_settings prints the running server's fsync, synchronous_commit and full_page_writes, e.g. "on on on".
pg_settings() { pg_sql "select concat_ws(' ', current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes'))"; }

pg_mode_words() {
  case "$1" in
    "on on on") echo "durable mode (fsync, synchronous_commit, full_page_writes on)" ;;
    "off off off") echo "fast mode (fsync, synchronous_commit, full_page_writes off: a crash may lose acknowledged writes; services start on it only with RAGPLANE_ALLOW_UNDURABLE=1)" ;;
    *) echo "undurable (fsync, synchronous_commit, full_page_writes = $1; services start on it only with RAGPLANE_ALLOW_UNDURABLE=1)" ;;
  esac
}

# apply_mode switches a running server to $mode with a reload when it runs in the other one.
apply_mode() {
  local want="on on on" have
  [ "$mode" = fast ] && want="off off off"
  have=$(pg_settings) || die "cannot read PostgreSQL's settings on 127.0.0.1:$pg_port"
  [ "$have" = "$want" ] && { say "PostgreSQL is in $(pg_mode_words "$have")"; return; }
  chroot --userspec="$(uid_of postgres)" "$root" "$pgbin/pg_ctl" -D "$inroot/pg" reload >/dev/null ||
    die "PostgreSQL reload failed; see $state/data/pg.log"
  for _ in $(seq 1 50); do have=$(pg_settings); [ "$have" = "$want" ] && break; sleep 0.1; done
  [ "$have" = "$want" ] || die "PostgreSQL still runs with fsync/synchronous_commit/full_page_writes = $have after a reload; is one set with ALTER SYSTEM (postgresql.auto.conf)?"
  if [ "$mode" = durable ]; then
    # What the fast mode wrote may still sit in the kernel's cache: a checkpoint with fsync on
    # flushes the server's buffers, sync the rest (PostgreSQL's advice when turning fsync on).
    pg_sql "checkpoint" >/dev/null && sync
  fi
  say "PostgreSQL switched to $(pg_mode_words "$have"), reloaded without a restart"
}

start_redis() {
  local owner; owner=$(uid_of redis)
  mkdir -p "$state/data/redis"
  chown -R "$owner" "$state/data/redis"
  if redis_pid >/dev/null; then
    say "Redis already running on 127.0.0.1:$redis_port"
    if [ "$(redis_config appendonly)" != yes ] || [ "$(redis_config appendfsync)" != everysec ]; then
      # A server from before the AOF: turn it on in place (Redis writes the AOF's base now).
      redis_cli config set appendfsync everysec >/dev/null && redis_cli config set appendonly yes >/dev/null ||
        die "could not turn on Redis's AOF; see $state/data/redis/redis.log"
      say "Redis switched to AOF persistence (appendfsync everysec)"
    fi
    return
  fi
  port_taken "$redis_port" && die "port $redis_port is taken by another process; set RAGPLANE_REDIS_PORT to a free port"
  chroot --userspec="$owner" "$root" /usr/bin/redis-server --bind 127.0.0.1 --port "$redis_port" \
    --dir "$inroot/redis" --pidfile "$inroot/redis/redis.pid" --logfile "$inroot/redis/redis.log" \
    --daemonize yes --save '' --appendonly yes --appendfsync everysec >/dev/null || die "Redis did not start; see $state/data/redis/redis.log"
  for _ in $(seq 1 50); do port_taken "$redis_port" && break; sleep 0.1; done
  port_taken "$redis_port" || die "Redis did not start listening; see $state/data/redis/redis.log"
  say "Redis on 127.0.0.1:$redis_port, AOF fsynced every second"
}

redis_cli() { chroot "$root" /usr/bin/redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# redis_config prints one of the running Redis's settings.
redis_config() { redis_cli config get "$1" | sed -n 2p; }

up() {
  mkdir -p "$state"
  ensure_prometheus
  ensure_chromium
  local db_url="${DATABASE_URL:-}" redis_url="${REDIS_URL:-}"
  if [ -z "$db_url" ] || [ -z "$redis_url" ]; then
    need_root
    ensure_root
    ensure_mount
  fi
  if [ -z "$db_url" ]; then
    start_pg
    local pw; pw=$(cat "$state/data/pg-password")
    db_url="postgres://postgres:$pw@127.0.0.1:$pg_port/ragplane?sslmode=disable"
    if ! chroot "$root" su -s /bin/sh postgres -c "psql -h /tmp -p $pg_port -tAc \"select 1 from pg_database where datname='ragplane'\"" | grep -q 1; then
      chroot "$root" su -s /bin/sh postgres -c "createdb -h /tmp -p $pg_port ragplane"
    fi
  else
    say "using DATABASE_URL from the environment"
  fi
  if [ -z "$redis_url" ]; then
    start_redis
    redis_url="redis://127.0.0.1:$redis_port/0"
  else
    say "using REDIS_URL from the environment"
  fi
  local model_dir
  model_dir=$("$here/ops/models.sh" | sed -n 's/^RAGPLANE_MODEL_DIR=//p')
  [ -n "$model_dir" ] || die "ops/models.sh did not report RAGPLANE_MODEL_DIR"
  local web_dir
  web_dir=$("$here/ops/web.sh" | sed -n 's/^RAGPLANE_WEB_DIR=//p')
  [ -n "$web_dir" ] || die "ops/web.sh did not report RAGPLANE_WEB_DIR"
  umask 077
  cat >"$state/stack.env" <<EOF
export DATABASE_URL='$db_url'
export REDIS_URL='$redis_url'
export PROMETHEUS_BIN='$(command -v prometheus)'
export PROMTOOL_BIN='$(command -v promtool)'
export RAGPLANE_MODEL_DIR='$model_dir'
export RAGPLANE_WEB_DIR='$web_dir'
export CHROMIUM_BIN='/usr/bin/chromium'
EOF
  say "wrote $state/stack.env"
}

down() {
  [ -d "$state/data" ] || { say "nothing to stop"; return; }
  [ -d "$root" ] || { say "nothing to stop"; return; }
  if [ -f "$state/data/pg/postmaster.pid" ] && pg_running; then
    chroot --userspec="$(uid_of postgres)" "$root" "$pgbin/pg_ctl" -D "$inroot/pg" -m fast -w stop >/dev/null && say "PostgreSQL stopped"
  fi
  local p
  if p=$(redis_pid); then
    kill "$p"
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    say "Redis stopped"
  fi
  if mountpoint -q "$root$inroot" 2>/dev/null; then umount "$root$inroot"; fi
}

status() {
  if [ -d "$root" ] && [ -d "$state/data/pg" ] && pg_running; then
    say "PostgreSQL running on 127.0.0.1:$pg_port, $(pg_mode_words "$(pg_settings)")"
  else
    say "PostgreSQL not running"
  fi
  if [ -d "$root" ] && redis_pid >/dev/null; then
    if [ "$(redis_config appendonly)" = yes ]; then
      say "Redis running on 127.0.0.1:$redis_port, AOF appendfsync $(redis_config appendfsync)"
    else
      say "Redis running on 127.0.0.1:$redis_port, without persistence (AOF off; ops/stack.sh up turns it on)"
    fi
  else
    say "Redis not running"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: ops/stack.sh up|down|status" ;;
esac
