#!/usr/bin/env bash
# Reloads under load, on a release build: HTTP/1.1, HTTP/2 over TLS and
# HTTP/3 workers send requests (a new connection every SOAK_PER_CONNECTION)
# while the config file is rewritten SOAK_REWRITES times (--watch) and the
# certificate pair replaced SOAK_SWAPS times, each change waited for until
# live and SOAK_SPACING_MS apart. Every non-2xx answer and socket error is
# counted; the run fails unless there are none. The driver is the test
# proxy-bin/tests/soak.rs (CI runs it with its shorter defaults).
#
#   bench/soak.sh                       # 20 rewrites, 20 swaps, 4 workers a protocol
#   SOAK_SPACING_MS=1000 bench/soak.sh  # longer between changes
#
# Writes bench/results/soak.json (and soak.md) unless SOAK_OUT says where.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${SOAK_OUT:-$here/results/soak.json}
export SOAK_REWRITES=${SOAK_REWRITES:-20}
export SOAK_SWAPS=${SOAK_SWAPS:-20}
export SOAK_SPACING_MS=${SOAK_SPACING_MS:-500}
export SOAK_WORKERS=${SOAK_WORKERS:-4}
export SOAK_PER_CONNECTION=${SOAK_PER_CONNECTION:-50}
export SOAK_OUT=$out
cd "$root"
cargo test -j2 --release -p proxy-bin --test soak -- --nocapture
python3 - "$out" <<'PY'
import json, platform, subprocess, sys, time
path = sys.argv[1]
run = json.load(open(path))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
lines = [
    "# Reloads under load (bench/soak.sh)",
    "",
    f"{time.strftime('%Y-%m-%d')}, commit {commit}, {cpu}, {platform.system()} {platform.release()}; "
    f"release build; {run['rewrites']} config rewrites (--watch) and {run['certificate_swaps']} "
    f"certificate swaps over {run['seconds']} s.",
    "",
    "| protocol | requests answered 2xx | failed (non-2xx, socket errors, > 10 s) | connections |",
    "|---|---:|---:|---:|",
]
for protocol in ("h1", "h2", "h3"):
    t = run[protocol]
    lines.append(f"| {protocol} | {t['ok']} | {t['failed']} | {t['connections']} |")
failures = [f for p in ("h1", "h2", "h3") for f in run[p]["failures"]]
lines += ["", "Failures: " + ("none." if not failures else "; ".join(failures))]
open(path.rsplit(".", 1)[0] + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
