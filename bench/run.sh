#!/usr/bin/env bash
# Side-by-side benchmark of portcullis, nginx, Caddy and HAProxy in front of
# one origin, on this machine, in one run. See bench/README.md.
#
#   bench/run.sh                 full run (BENCH_SECONDS per cell, default 10)
#   BENCH_SMOKE=1 bench/run.sh   a short run that proves the script works
#
# Installs what it needs from Debian's packages, builds portcullis in release
# mode, and writes bench/results/latest.md and latest.png (or BENCH_OUT).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

need=()
for tool in nginx caddy haproxy wrk h2load taskset; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
# nginx's stream module, for the layer-4 rows.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
if [ ${#need[@]} -gt 0 ]; then
  # Packaged services must not start on install: they would listen on all
  # interfaces. The benchmark starts its own instances on 127.0.0.1.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    nginx libnginx-mod-stream caddy haproxy wrk nghttp2-client python3-matplotlib util-linux >/dev/null
fi

(cd "$root" && cargo build -j2 --release -p proxy-bin -p h3load)
# As many descriptors as allowed: the idle row holds thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/python3 "$here/bench.py" --portcullis "$root/target/release/portcullis" \
  --h3load "$root/target/release/h3load" "$@"
