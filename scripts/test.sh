#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with the .NET 10 SDK. Installs what the
# tests need when it is missing (redis-server, Node with npm, the real AI SDK client), starts
# Redis on a free loopback port, runs every test, stops Redis, and ends with one line:
# "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

fail() { echo "$1"; echo "0 passed, 1 failed"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
apt_log=$(mktemp)
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$apt_log" 2>&1 \
    || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$apt_log" 2>&1 \
         && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$apt_log" 2>&1; } \
    || { tail -20 "$apt_log"; return 1; }
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "Installing redis-server (Debian package)..."
  apt_install redis-server || fail "could not install redis-server"
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "Installing nodejs and npm (Debian packages)..."
  apt_install nodejs npm || fail "could not install nodejs and npm"
fi

# The real AI SDK browser client, for the client conformance tests.
(cd src/Sidecar.Tests/ClientConformance/client && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null) \
  || fail "npm ci failed in src/Sidecar.Tests/ClientConformance/client"

redis_pid=""
workdir=$(mktemp -d)
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; fi
  rm -rf "$workdir" "$apt_log"
}
trap cleanup EXIT

# A free port: try random high ports until Redis binds one.
for _ in $(seq 1 20); do
  port=$((20000 + RANDOM % 20000))
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" \
    --logfile "$workdir/redis.log" </dev/null &
  redis_pid=$!
  for _ in $(seq 1 50); do
    kill -0 "$redis_pid" 2>/dev/null || break
    # PONG from our own process: another server on that port would have made ours exit.
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && kill -0 "$redis_pid" 2>/dev/null; then break 2; fi
    sleep 0.1
  done
  kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null
  redis_pid=""
done
[ -n "$redis_pid" ] || fail "could not start redis-server"
export SIDECAR_TEST_REDIS="127.0.0.1:$port"
echo "redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on $SIDECAR_TEST_REDIS"

log="$workdir/test.log"
dotnet test Sidecar.sln -c Release </dev/null 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

summary=$(grep -E '^(Passed|Failed)!' "$log")
count() { echo "$summary" | grep -oE "$1: +[0-9]+" | awk '{ n += $2 } END { print n + 0 }'; }
passed=$(count Passed); failed=$(count Failed); skipped=$(count Skipped)
if [ -z "$summary" ] || { [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
  # The build or the test host failed before any test could report.
  failed=$((failed + 1))
  status=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
