#!/usr/bin/env bash
# `make demo`: the whole story so far, end to end, on real servers. Brings the local stack up,
# starts the control plane, provisions three tenants on three plans, issues each a token, shows
# the effective config of one, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/ragplane
[ -x "$bin" ] || go build -o "$bin" ./cmd/ragplane

stack_was_up=false
case "$(ops/stack.sh status)" in *"PostgreSQL running"*) stack_was_up=true ;; esac
cp_pid=""
dp_pid=""
dp2_pid=""
px_pid=""
cleanup() {
  status=$?
  if [ -n "$px_pid" ] && kill -0 "$px_pid" 2>/dev/null; then
    kill -TERM "$px_pid" && wait "$px_pid" 2>/dev/null || true
    echo "==> proxy stopped"
  fi
  for pid in $dp_pid $dp2_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" && wait "$pid" 2>/dev/null || true
      echo "==> data-plane worker stopped"
    fi
  done
  if [ -n "$cp_pid" ] && kill -0 "$cp_pid" 2>/dev/null; then
    kill -TERM "$cp_pid" && wait "$cp_pid" 2>/dev/null || true
    echo "==> control plane stopped"
  fi
  if [ "$stack_was_up" = false ]; then ops/stack.sh down >/dev/null && echo "==> local stack stopped"; fi
  [ $status -eq 0 ] || echo "demo failed (exit $status); control plane log: .ragplane/demo-controlplane.log" >&2
  exit $status
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "local stack (PostgreSQL 17 + pgvector, Redis)"
ops/stack.sh up
source .ragplane/stack.env

# The demo has its own catalog database and tenant-database prefix, made fresh on every run.
server_url=$DATABASE_URL
demo_db=ragplane_demo
go build -o bin/sqlexec ./ops/sqlexec
psql_admin() { bin/sqlexec "$server_url" "$@" >/dev/null; }
psql_admin "drop database if exists $demo_db with (force)"
for name in $(bin/sqlexec "$server_url" "select datname from pg_database where datname like 'demo\_%'"); do
  psql_admin "drop database if exists \"$name\" with (force)"
done
for name in $(bin/sqlexec "$server_url" "select rolname from pg_roles where rolname like 'demo\_%'"); do
  psql_admin "drop role if exists \"$name\""
done
psql_admin "create database $demo_db"

export DATABASE_URL="${server_url%/*}/$demo_db?sslmode=disable"
export RAGPLANE_LOCAL_ADMIN_URL=$server_url
export RAGPLANE_LOCAL_PREFIX=demo_
export RAGPLANE_ADMIN_ADDR=127.0.0.1:${RAGPLANE_DEMO_PORT:-18081}
export RAGPLANE_ADMIN_URL=http://$RAGPLANE_ADMIN_ADDR
export RAGPLANE_XDS_ADDR=127.0.0.1:${RAGPLANE_DEMO_XDS_PORT:-18001}
# Fresh secrets for the demo only; never reuse these.
export RAGPLANE_ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
export RAGPLANE_SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '/+=')
export RAGPLANE_INTERNAL_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '/+=')
export RAGPLANE_DATAPLANE_ADDR=127.0.0.1:${RAGPLANE_DEMO_WORKER_PORT:-18090}
export RAGPLANE_WORKER_URL=http://$RAGPLANE_DATAPLANE_ADDR
export RAGPLANE_CONTROLPLANE_URL=$RAGPLANE_ADMIN_URL
export RAGPLANE_PROXY_ADDR=127.0.0.1:${RAGPLANE_DEMO_PROXY_PORT:-18080}
export RAGPLANE_API_URL=http://$RAGPLANE_PROXY_ADDR
export RAGPLANE_PROXY_ADMIN_ADDR=127.0.0.1:${RAGPLANE_DEMO_PROXY_ADMIN_PORT:-18082}
export RAGPLANE_REDIS_PREFIX="demo-$$:"
# Tenants sleep after 15 s unused, and siloed ones are then offloaded to archives (shown near the end).
export RAGPLANE_IDLE_AFTER=15s RAGPLANE_OFFLOAD_AFTER=2s RAGPLANE_OFFLOAD_DIR=$PWD/.ragplane/demo-offload
rm -rf "$RAGPLANE_OFFLOAD_DIR"

step "control plane on $RAGPLANE_ADMIN_ADDR"
$bin controlplane >.ragplane/demo-controlplane.log 2>&1 &
cp_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$RAGPLANE_ADMIN_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$cp_pid" 2>/dev/null || { tail -5 .ragplane/demo-controlplane.log; exit 1; }
  sleep 0.1
done
curl -fsS "$RAGPLANE_ADMIN_URL/readyz"; echo

step "plans"
$bin plans list

step "provision three tenants (a database of their own each, on the local PostgreSQL)"
$bin tenants create --id acme_corp  --name "Acme Corp"  --email ops@acme.example  --plan enterprise --wait 60s
$bin tenants create --id beta_inc   --name "Beta Inc"   --email ops@beta.example  --plan pro        --wait 60s
$bin tenants create --id gamma_labs --name "Gamma Labs" --email ops@gamma.example --plan free       --wait 60s
$bin tenants list

step "an API key and a short-lived token for each tenant"
declare -A keys tokens
for t in acme_corp beta_inc gamma_labs; do
  key=$($bin keys create "$t" --name demo 2>/dev/null)
  keys[$t]=$key
  token=$(RAGPLANE_API_KEY=$key $bin token --user "analyst@$t")
  claims=$(printf '%s' "$token" | cut -d. -f2 | tr '_-' '/+' | base64 -d 2>/dev/null || true)
  tokens[$t]=$token
  printf '%-11s key %s…  token %s…\n            claims %s}\n' "$t" "${key:0:17}" "${token:0:24}" "${claims%\}}"
done

step "effective config of acme_corp, with the layer each value comes from"
$bin tenants config acme_corp

step "a live change: gamma_labs gets a tenant override, the config version moves"
curl -fsS -X PATCH -H "Authorization: Bearer $RAGPLANE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"limits":{"requests_per_second":2}}' "$RAGPLANE_ADMIN_URL/v1/tenants/gamma_labs" >/dev/null
$bin tenants config gamma_labs | grep -E 'config version|requests_per_second'

step "bad input is refused with problem+json"
curl -sS -X POST -H "Authorization: Bearer $RAGPLANE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"id":"Bad Slug","name":"x","email":"x@example.com","plan":"free"}' "$RAGPLANE_ADMIN_URL/v1/tenants"; echo

step "two data-plane workers, $RAGPLANE_DATAPLANE_ADDR and 127.0.0.1:${RAGPLANE_DEMO_WORKER2_PORT:-18091}, registering with the control plane"
RAGPLANE_USAGE_DIR=.ragplane/usage-1 $bin dataplane >.ragplane/demo-dataplane.log 2>&1 &
dp_pid=$!
RAGPLANE_USAGE_DIR=.ragplane/usage-2 RAGPLANE_DATAPLANE_ADDR=127.0.0.1:${RAGPLANE_DEMO_WORKER2_PORT:-18091} \
  $bin dataplane >.ragplane/demo-dataplane-2.log 2>&1 &
dp2_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$RAGPLANE_WORKER_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$dp_pid" 2>/dev/null || { tail -5 .ragplane/demo-dataplane.log; exit 1; }
  sleep 0.1
done

step "the proxy on $RAGPLANE_PROXY_ADDR, configured over xDS by the control plane"
$bin proxy >.ragplane/demo-proxy.log 2>&1 &
px_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$RAGPLANE_API_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$px_pid" 2>/dev/null || { tail -5 .ragplane/demo-proxy.log; exit 1; }
  sleep 0.1
done
curl -fsS -H "Authorization: Bearer $RAGPLANE_ADMIN_TOKEN" "$RAGPLANE_ADMIN_URL/v1/workers"; echo
curl -fsS -H "Authorization: Bearer $RAGPLANE_ADMIN_TOKEN" "$RAGPLANE_ADMIN_URL/v1/proxies" | head -c 300; echo

step "ingest each tenant's compliance documents (ops/samples) through the proxy, into its own database"
for t in acme_corp beta_inc gamma_labs; do
  echo "$t:"
  RAGPLANE_TOKEN=${tokens[$t]} $bin ingest ops/samples/$t/*
done

step "questions, answered from the tenant's own documents with citations"
ask() { printf '\n%s asks (%s): %s\n' "$1" "$2" "$3"; RAGPLANE_TOKEN=${tokens[$1]} $bin query --mode "$2" "$3"; }
ask acme_corp hybrid  "How long are customer records retained?"
ask acme_corp keyword "Who signs off access reviews?"
ask acme_corp graph   "What does Globex Inc comply with?"
ask acme_corp vector  "what happens after a personal data breach"
ask beta_inc  hybrid  "What must happen when a laptop is lost?"
ask gamma_labs hybrid "How long are raw datasets kept?"
printf '\nIsolation: gamma_labs asks about Acme'"'"'s retention and finds only its own documents:\n'
RAGPLANE_TOKEN=${tokens[gamma_labs]} $bin query --mode keyword "customer records seven years invoices"

burst() { # burst TENANT N: N requests back to back, print the status codes and why
  for _ in $(seq 1 "$2"); do
    curl -s -o .ragplane/demo-last.json -w '%{http_code}' -H "Authorization: Bearer ${tokens[$1]}" "$RAGPLANE_API_URL/v1/documents?limit=1"
    if grep -q '"field"' .ragplane/demo-last.json 2>/dev/null; then sed -n 's/.*"field":"\([a-z_]*\)".*/ (\1)/p' .ragplane/demo-last.json; else echo; fi
  done | sort | uniq -c | awk '{printf "    %s x %s %s\n", $1, $2, $3}'
}
step "rate limits per tenant, shared in Redis: gamma_labs (free: 2 req/s, burst 5) gets 429s, acme_corp is unaffected"
echo "  gamma_labs, 15 requests back to back:"; burst gamma_labs 15
echo "  acme_corp, 15 requests back to back:";  burst acme_corp 15

step "a limit changed live through the admin API reaches the proxy over xDS"
curl -fsS -X PATCH -H "Authorization: Bearer $RAGPLANE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"limits":{"requests_per_second":100,"burst":50}}' "$RAGPLANE_ADMIN_URL/v1/tenants/gamma_labs" >/dev/null
sleep 0.5
echo "  gamma_labs, 15 requests back to back after raising it to 100 req/s:"; burst gamma_labs 15

step "gamma_labs upgrades to pro: its data moves online from the free plan's shared pool to a database of its own"
$bin tenants tier gamma_labs
$bin tenants update gamma_labs --plan pro >/dev/null
$bin tenants tier gamma_labs --wait 2m
ask gamma_labs keyword "How long are raw datasets kept?"

step "beta_inc, unused since its question, sleeps: its database is written to an archive and dropped; its next question restores it"
offloaded=false
for _ in $(seq 1 120); do
  if $bin tenants activity beta_inc -o json | grep -q '"state": *"offloaded"'; then offloaded=true; break; fi
  sleep 0.5
done
[ "$offloaded" = true ] || { echo "beta_inc was not offloaded within 60 s" >&2; $bin tenants activity beta_inc >&2; exit 1; }
$bin tenants activity beta_inc
ls -l "$RAGPLANE_OFFLOAD_DIR" | sed -n 's/^.* \([0-9][0-9]*\) [A-Z][a-z][a-z] .* \(beta_inc-.*\)$/  archive \2: \1 bytes/p'
ask beta_inc hybrid "What must happen when a laptop is lost?"
$bin tenants activity beta_inc

step "usage per tenant, metered by the workers and shipped to the catalog (estimated cost from the price table)"
sleep 1.5 # the workers ship their usage spool every second
$bin usage acme_corp beta_inc gamma_labs

step "the audit trail"
$bin audit --limit 8

step "done: metrics at $RAGPLANE_ADMIN_URL/metrics while it runs; OpenAPI at $RAGPLANE_ADMIN_URL/openapi.json"

if [ "${RAGPLANE_DEMO_KEEP:-}" = 1 ]; then
  step "everything keeps running for you to explore; Ctrl-C stops it all"
  cat <<EOT
  export RAGPLANE_ADMIN_URL=$RAGPLANE_ADMIN_URL RAGPLANE_ADMIN_TOKEN=$RAGPLANE_ADMIN_TOKEN RAGPLANE_API_URL=$RAGPLANE_API_URL
  export RAGPLANE_TOKEN=${tokens[acme_corp]}   # acme_corp's token, valid 15 minutes
  bin/ragplane tenants list; bin/ragplane query --mode hybrid "How long are customer records retained?"
  metrics: $RAGPLANE_ADMIN_URL/metrics  http://$RAGPLANE_PROXY_ADMIN_ADDR/metrics  $RAGPLANE_WORKER_URL/metrics   (make prometheus scrapes the default ports)
EOT
  wait
fi
