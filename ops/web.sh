#!/usr/bin/env bash
# The API reference viewer served at /docs by the control plane and the proxy: swagger-ui-dist from
# the npm registry, at the exact version and integrity pinned in ops/web/package-lock.json, installed
# with `npm ci` into a cache outside the clone (never committed, never fetched at run time).
#
#   ops/web.sh     install what is missing (idempotent), then print RAGPLANE_WEB_DIR=<dir>
#
# The install lands in ${RAGPLANE_CACHE_DIR:-/var/cache/ragplane}/web/<sha256 of the lock>/, so a
# version bump installs beside the old one. It is made in a temporary directory renamed into place
# once npm ci succeeded (npm checks every tarball against the lock's sha512 integrity), so a
# directory without its .ragplane-verified marker never exists under its final name. Install scripts
# are not run (--ignore-scripts): swagger-ui-dist's dependency @scarf/scarf only phones home from one.
# Progress goes to stderr; stdout carries only the RAGPLANE_WEB_DIR line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${RAGPLANE_CACHE_DIR:-/var/cache/ragplane}"
web="$cache/web"

die() { printf 'web: %s\n' "$*" >&2; exit 1; }
say() { printf 'web: %s\n' "$*" >&2; }

command -v npm >/dev/null || die "npm is missing; install Node.js and npm (Debian: apt-get install npm), or leave RAGPLANE_WEB_DIR unset (/docs then answers 503)"
lock="$here/ops/web/package-lock.json"
key=$(cat "$here/ops/web/package.json" "$lock" | sha256sum | cut -c1-16)
dest="$web/$key"
mkdir -p "$web"
# Concurrent runs (two clones, make up racing make test) wait for each other.
exec 9>"$web/.lock"
flock 9
if [ -f "$dest/.ragplane-verified" ]; then
  say "viewer already in $dest"
else
  tmp=$(mktemp -d "$dest.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cp "$here/ops/web/package.json" "$lock" "$tmp/"
  say "installing the /docs viewer with npm ci into $dest"
  args=(ci --ignore-scripts --no-audit --no-fund --omit=dev)
  [ -n "${RAGPLANE_NPM_REGISTRY:-}" ] && args+=(--registry "$RAGPLANE_NPM_REGISTRY")
  (cd "$tmp" && npm "${args[@]}") >"$tmp.log" 2>&1 || die "npm ci failed; see $tmp.log"
  rm -f "$tmp.log"
  [ -f "$tmp/node_modules/swagger-ui-dist/swagger-ui-bundle.js" ] || die "npm ci did not install swagger-ui-dist"
  echo "$key" >"$tmp/.ragplane-verified"
  chmod -R a+rX "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  say "viewer installed in $dest"
fi
flock -u 9
echo "RAGPLANE_WEB_DIR=$dest/node_modules"
