#!/usr/bin/env bash
# Slow clients against portcullis: slowloris (slow heads) and R-U-Dead-Yet
# (slow bodies), 1,000 connections each from slowhttptest, while a probe
# sends normal requests on new connections and records how many succeed
# and how fast. Each attack runs against the default config and against one
# with max_clients = 512 (rpxy's default, which the attack then fills).
#
#   bench/slow_clients.sh                     SLOW_SECONDS per attack (default 30)
#   SLOW_SMOKE=1 bench/slow_clients.sh        5 s, 200 connections: proves the script works
#
# Bounded: every attack stops itself after its length; everything started
# here is stopped on exit. Writes bench/results/slow_clients.md and .json
# (or SLOW_OUT).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
seconds=${SLOW_SECONDS:-30}
connections=1000
if [ -n "${SLOW_SMOKE:-}" ]; then
  seconds=5
  connections=200
fi
out=${SLOW_OUT:-$here/results}
mkdir -p "$out"
origin_port=18195
proxy_port=18196

need=()
for tool in nginx slowhttptest curl; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx slowhttptest curl >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  (cd "$root" && cargo build -j2 --release -p proxy-bin)
  BIN="$root/target/release/portcullis"
fi
# Room for the attackers' sockets and the proxy's, on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

cat > "$work/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/origin-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$origin_port;
        location / { default_type text/plain; return 200 "hello from the origin\n"; }
    }
}
EOF
nginx -c "$work/origin.conf" -e "$work/origin-error.log" &
pids+=($!)

# The proxy's config: the bundled defaults but for where it listens.
config() {
  cat <<EOF
listen_port = $proxy_port
listen_address_v4 = "127.0.0.1"
$1
[log]
access_log = false
[apps.bench]
server_name = "127.0.0.1"
reverse_proxy = [{ upstream = [{ location = "127.0.0.1:$origin_port" }] }]
EOF
}

# Requests on new connections, one every 50 ms for `seconds`: each one's
# status and time, as JSON lines.
probe() {
  /usr/bin/python3 - "$proxy_port" "$seconds" <<'PY'
import http.client, json, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
while time.monotonic() < end:
    start = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/probe", headers={"Host": "127.0.0.1"})
        status = conn.getresponse().status
        conn.close()
    except Exception:
        status = 0
    print(json.dumps({"status": status, "ms": (time.monotonic() - start) * 1000}), flush=True)
    time.sleep(max(0.0, 0.05 - (time.monotonic() - start)))
PY
}

results="$work/results.jsonl"
: > "$results"
run() {
  local attack=$1 flag=$2 setting=$3 label=$4
  config "$setting" > "$work/portcullis.toml"
  "$BIN" --config "$work/portcullis.toml" >/dev/null 2>"$work/proxy.log" &
  local proxy=$!
  pids+=("$proxy")
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$proxy_port/" && break
    sleep 0.1
  done
  slowhttptest "$flag" -c "$connections" -r 500 -i 5 -s 8192 -l $((seconds + 5)) \
    -u "http://127.0.0.1:$proxy_port/" -p 3 >"$work/slowhttptest.log" 2>&1 &
  local attacker=$!
  pids+=("$attacker")
  sleep 3 # let the attack open its connections
  probe > "$work/probe.jsonl"
  kill "$attacker" 2>/dev/null || true
  wait "$attacker" 2>/dev/null || true
  kill "$proxy" 2>/dev/null || true
  wait "$proxy" 2>/dev/null || true
  /usr/bin/python3 - "$attack" "$label" "$work/probe.jsonl" >> "$results" <<'PY'
import json, sys
attack, label, path = sys.argv[1:4]
probes = [json.loads(line) for line in open(path)]
ok = sorted(p["ms"] for p in probes if p["status"] == 200)
n = len(probes)
p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))] if ok else None
print(json.dumps({"attack": attack, "config": label, "probes": n,
                  "succeeded": len(ok), "ratio": len(ok) / n if n else 0,
                  "p50_ms": ok[len(ok) // 2] if ok else None, "p99_ms": p99}))
PY
}

run "slow headers (slowloris)" -H "" "default"
run "slow headers (slowloris)" -H "max_clients = 512" "max_clients = 512"
run "slow bodies (R-U-Dead-Yet)" -B "" "default"
run "slow bodies (R-U-Dead-Yet)" -B "max_clients = 512" "max_clients = 512"

/usr/bin/python3 - "$results" "$out" "$connections" "$seconds" <<'PY'
import json, sys
path, out, connections, seconds = sys.argv[1:5]
rows = [json.loads(line) for line in open(path)]
json.dump(rows, open(f"{out}/slow_clients.json", "w"), indent=2)
lines = [
    f"# Slow clients: {connections} attacking connections, {seconds} s of probes each",
    "",
    "| attack | config | probes | succeeded | p50, ms | p99, ms |",
    "|---|---|---|---|---|---|",
]
for r in rows:
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    lines.append(f"| {r['attack']} | {r['config']} | {r['probes']} | "
                 f"{100 * r['ratio']:.1f}% | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} |")
open(f"{out}/slow_clients.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
