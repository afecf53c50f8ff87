#!/usr/bin/env bash
# The propagation benchmark (`make bench-propagation`): how fast a PATCH through the admin API is
# enforced by a running proxy, how long a cold proxy takes to get ready, and what the proxy and
# the control plane cost in memory and idle CPU, at 100, 10,000 and 100,000 tenants; for this
# working tree and, in the same run, a baseline revision. The measuring is done by
# ops/bench/propagation (Go); BENCHMARKS.md ("Propagation") describes the method.
#
#   PROP_SIZES=100,10000,100000  catalog sizes (tenants)
#   PROP_SAMPLES=30              PATCH -> enforced samples per size
#   BASELINE_REV=725903f         baseline revision, built from a temporary git worktree; "none" skips it
#   CURRENT_REV=                 the "current" build: this working tree by default, or a revision
#   PROP_OUT=.ragplane/bench/propagation.md   the Markdown report (also printed)
#   PROP_POLL=1ms PROP_SAMPLE_TIMEOUT=60s PROP_READY_TIMEOUT=60s PROP_IDLE=10s PROP_CHUNK=4000
#
# Needs the local stack (`make up`; DATABASE_URL and REDIS_URL from .ragplane/stack.env). Each build
# and size gets a catalog database of its own; everything the run starts is stopped and dropped.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  [ -f .ragplane/stack.env ] || { echo "propagation: no .ragplane/stack.env; run make up first" >&2; exit 1; }
  source .ragplane/stack.env
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ragplane-propagation.XXXXXX")
worktrees=()
cleanup() {
  status=$?
  for wt in "${worktrees[@]}"; do
    git worktree remove --force "$wt" >/dev/null 2>&1 || true
  done
  [ ${#worktrees[@]} -eq 0 ] || git worktree prune >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

# build NAME REV: builds ragplane at REV (from a temporary git worktree), or this working tree when
# REV is empty, to $work/ragplane-NAME, and sets $label.
build() {
  local name=$1 rev=$2
  if [ -z "$rev" ]; then
    label="$name ($(git describe --always --dirty 2>/dev/null || echo working tree))"
    echo "propagation: building this working tree: $label"
    go build -o "$work/ragplane-$name" ./cmd/ragplane
    return
  fi
  rev=$(git rev-parse --short "$rev^{commit}")
  label="$name ($rev)"
  echo "propagation: building $label in a temporary worktree"
  worktrees+=("$work/src-$name")
  git worktree add --quiet --detach "$work/src-$name" "$rev"
  (cd "$work/src-$name" && go build -o "$work/ragplane-$name" ./cmd/ragplane)
}

go build -o "$work/propagation" ./ops/bench/propagation
bins=()
baseline=${BASELINE_REV-725903f}
if [ -n "$baseline" ] && [ "$baseline" != none ]; then
  build baseline "$baseline"
  bins+=(-bin "$label=$work/ragplane-baseline")
fi
build current "${CURRENT_REV:-}"
bins+=(-bin "$label=$work/ragplane-current")

# The command that reproduces this run, with the settings it was given, for the report.
command="make bench-propagation"
for v in BASELINE_REV CURRENT_REV PROP_SIZES PROP_SAMPLES PROP_POLL PROP_SAMPLE_TIMEOUT PROP_READY_TIMEOUT PROP_IDLE PROP_CHUNK; do
  if [ -n "${!v+x}" ]; then command="$v=${!v} $command"; fi
done

rm -rf .ragplane/bench/propagation-logs
"$work/propagation" "${bins[@]}" \
  -sizes "${PROP_SIZES:-100,10000,100000}" \
  -samples "${PROP_SAMPLES:-30}" \
  -poll "${PROP_POLL:-1ms}" \
  -sample-timeout "${PROP_SAMPLE_TIMEOUT:-60s}" \
  -ready-timeout "${PROP_READY_TIMEOUT:-60s}" \
  -idle "${PROP_IDLE:-10s}" \
  -chunk "${PROP_CHUNK:-4000}" \
  -out "${PROP_OUT:-.ragplane/bench/propagation.md}" \
  -logs .ragplane/bench/propagation-logs \
  -command "$command"
