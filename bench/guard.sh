#!/usr/bin/env bash
# The instruction-count guard, run by CI: instructions per proxied
# keep-alive request under callgrind (bench/instructions.sh) for HTTP/1.1,
# HTTP/1.1 over TLS, HTTP/2 over TLS, h2c, and h2c to an h2c upstream
# (force_http2_upstream), against the baseline in
# bench/results/instructions.txt. Fails when one grows by more than LIMIT
# percent (5). Callgrind counts instructions, not time, so a busy machine
# does not move them; the baseline is of this kind of machine (its CPU is
# written beside it: another CPU runs other code paths in the crypto).
#
#   bash bench/guard.sh             # check
#   UPDATE=1 bash bench/guard.sh    # write the baseline anew: a change that
#                                   # must cost more does it in the same
#                                   # commit and says why
#   BASELINE=file bash bench/guard.sh   # check against another file
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
baseline=${BASELINE:-$here/results/instructions.txt}
limit=${LIMIT:-5}

if [ -z "${BIN:-}" ]; then
  (cd "$root" && cargo build -j2 --profile profiling -p proxy-bin)
  BIN="$root/target/profiling/portcullis"
fi
export BIN

measured=$(mktemp)
trap 'rm -f "$measured"' EXIT
for mode in h1: h1_tls:TLS=1 h2_tls:HTTP2=1 h2c:H2C=1 h2c_h2up:H2C=1,H2_UPSTREAM=1; do
  name=${mode%%:*}
  settings=${mode#*:}
  line=$(env ${settings//,/ } bash "$here/instructions.sh" | grep '^instructions per request: ')
  count=$(sed -n 's/^instructions per request: \([0-9]*\).*/\1/p' <<<"$line")
  [ -n "$count" ] || { echo "$name: no count ($line)" >&2; exit 1; }
  echo "$name $count" >>"$measured"
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
if [ -n "${UPDATE:-}" ]; then
  {
    echo "# Instructions per proxied request (bench/guard.sh; UPDATE=1 rewrites it)."
    echo "# CPU: $cpu"
    cat "$measured"
  } >"$baseline"
  cat "$baseline"
  exit 0
fi

failed=0
while read -r name count; do
  base=$(awk -v n="$name" '$1 == n {print $2}' "$baseline")
  if [ -z "$base" ]; then
    echo "$name: $count instructions per request, no baseline" >&2
    failed=1
    continue
  fi
  change=$(awk -v c="$count" -v b="$base" 'BEGIN {printf "%+.1f", (c - b) * 100 / b}')
  verdict=ok
  if awk -v c="$count" -v b="$base" -v l="$limit" 'BEGIN {exit !(c > b * (1 + l / 100))}'; then
    verdict="FAILED: more than +$limit%"
    failed=1
  fi
  echo "$name: $count instructions per request (baseline $base, $change%) $verdict"
done <"$measured"
if [ "$failed" = 1 ]; then
  echo "Instructions per request grew past the baseline ($baseline, measured on: $(sed -n 's/^# CPU: //p' "$baseline"); here: $cpu)." >&2
  echo "Find the cost (bench/instructions.sh, callgrind_annotate), or if it pays for itself, UPDATE=1 bash bench/guard.sh and say why in the commit." >&2
  exit 1
fi
