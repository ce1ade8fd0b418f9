#!/usr/bin/env bash
# Runs the demo: the c010 emulator on 127.0.0.1:3000 and the sidecar in front of it on
# 127.0.0.1:8080 (management on 8081), embedded defaults, no Redis. Prints a ready-to-paste
# `curl -N` command and runs until Ctrl-C. `--smoke` sends one chat itself and exits.
# Ports: EMULATOR_PORT, SIDECAR_PORT, SIDECAR_MANAGEMENT_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
emulator_port=${EMULATOR_PORT:-3000}
public_port=${SIDECAR_PORT:-8080}
management_port=${SIDECAR_MANAGEMENT_PORT:-8081}
smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true

echo "Building..."
dotnet build -c Release -v quiet -nologo src/Sidecar/Sidecar.csproj </dev/null >/dev/null
dotnet build -c Release -v quiet -nologo samples/ChatUpstream/ChatUpstream.csproj </dev/null >/dev/null

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

emulator_dir="$root/samples/ChatUpstream/bin/Release/net10.0"
sidecar_dir="$root/src/Sidecar/bin/Release/net10.0"
dotnet "$emulator_dir/ChatUpstream.dll" --contentRoot "$emulator_dir" \
  --urls "http://127.0.0.1:$emulator_port" --Emulator:DefaultPaceMs=40 </dev/null &
pids+=($!)
dotnet "$sidecar_dir/Sidecar.dll" --contentRoot "$sidecar_dir" \
  --Sidecar:UpstreamUrl="http://127.0.0.1:$emulator_port" \
  --Sidecar:Listen:Address=127.0.0.1 \
  --Sidecar:Listen:PublicPort="$public_port" \
  --Sidecar:Listen:ManagementPort="$management_port" </dev/null &
pids+=($!)

ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3 && head -1 <&3 | grep -q ' 200') 2>/dev/null; }
for _ in $(seq 1 150); do
  if ready "$management_port" /readyz && ready "$emulator_port" /; then break; fi
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a process failed to start"; exit 1; }; done
  sleep 0.2
done
ready "$management_port" /readyz || { echo "the sidecar did not become ready"; exit 1; }

chat() {
  printf "curl -N -X POST http://127.0.0.1:%s/api/v/c010/demo-session -H 'content-type: application/json' -d '%s'" \
    "$public_port" "{\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"text\":\"Hello! /scenario $1\"}]}]}"
}

if $smoke; then
  body=$(eval "$(chat 'reasoning artifact pace:5') -sS")
  echo "$body" | tail -4
  echo "$body" | grep -q '^data: \[DONE\]' && echo "demo smoke: OK" && exit 0
  echo "demo smoke: no [DONE]"; exit 1
fi

cat <<TXT

The sidecar (http://127.0.0.1:$public_port) is in front of the c010 emulator (http://127.0.0.1:$emulator_port).
Management: http://127.0.0.1:$management_port/healthz and /readyz. Ctrl-C stops both.

Stream an answer through the sidecar (reasoning, a createDocument artifact, then text):

  $(chat 'reasoning artifact deltas:200 pace:100')

While it streams, resume it from another terminal (replay from the start, then live):

  curl -N http://127.0.0.1:$public_port/api/v/c010/demo-session

or stop it: curl -X DELETE http://127.0.0.1:$public_port/api/v/c010/demo-session

Other scenarios (samples/ChatUpstream/README.md has the grammar): 'search', 'deltas:200',
'drop:10' (the upstream connection drops), 'stall:5' (the upstream goes silent),
'persist-error', 'error:quota' (a billing error body).

TXT
wait
