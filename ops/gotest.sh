#!/usr/bin/env bash
# Runs `go test -v` with the given arguments, prints failures, skips and package results, and a
# closing "N passed, N failed" line. Under `make test` a skipped test is a failure: every
# integration test must find its real server.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -v "$@" >"$log" 2>&1
status=$?
mkdir -p .ragplane && cp "$log" .ragplane/test.log
grep -E '^(ok |FAIL|panic:|\s*--- (FAIL|SKIP))' "$log"
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if [ "$skipped" -gt 0 ]; then
  echo "gotest: $skipped skipped test(s); a skip is a failure here"
  status=1
fi
if [ "$failed" -gt 0 ]; then
  echo "--- what the failing tests said (full log: .ragplane/test.log):"
  grep -B 25 -E '^\s*--- FAIL' "$log" | grep -vE '^\s*(=== (RUN|PAUSE|CONT)|--- PASS)'
elif [ "$status" -ne 0 ] && [ "$skipped" -eq 0 ]; then
  tail -n 50 "$log" # a build failure or a panic outside a test
fi
echo "test: $passed passed, $failed failed, $skipped skipped"
exit $status
