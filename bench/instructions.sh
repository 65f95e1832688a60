#!/usr/bin/env bash
# Instructions portcullis executes per proxied keep-alive request, counted by
# callgrind: the same number for the same binary and inputs, whatever else
# the machine is doing. Runs N1 and N2 requests on one connection and prints
# (I(N2) - I(N1)) / (N2 - N1), so start-up and shutdown cancel out.
#
#   bench/instructions.sh            # N1=1000, N2=3000
#   BIN=target/release/portcullis bench/instructions.sh
#   UPSTREAM_TLS=1 bench/instructions.sh   # the origin behind TLS (a CA made
#                                          # for the run, verified), as row 9
#   H2_UPSTREAM=1 bench/instructions.sh    # the origin in h2c, reached with
#                                          # force_http2_upstream, as row 4b
#   TLS=1 bench/instructions.sh            # clients over TLS 1.3
#   HTTP2=1 bench/instructions.sh          # clients over TLS 1.3 speaking
#                                          # HTTP/2, one stream after another
#   H2C=1 bench/instructions.sh            # HTTP/2 in cleartext (prior
#                                          # knowledge), one stream after another
#   CLIENT_AUTH=1 bench/instructions.sh    # clients over TLS 1.3 to an app that
#                                          # requires client certificates
#   TLS=1 NEW_CONNECTIONS=1 ...            # each request on a new connection
#                                          # resuming the first one's session
#                                          # (per resumed handshake + request;
#                                          # CLIENT_AUTH=1 too)
#   TLS=1 NEW_CONNECTIONS=1 FULL_HANDSHAKES=1 ...  # never resuming (row 3)
#   METRICS=1 bench/instructions.sh        # with an admin listener, so every
#                                          # request is counted for /metrics
#
# Needs valgrind, curl, nginx and h2load (installed here from Debian's packages if
# missing). Uses the `profiling` build (release with line tables), so the
# callgrind output in $OUT can be read with callgrind_annotate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
n1=${N1:-1000}
n2=${N2:-3000}
origin_port=${ORIGIN_PORT:-18095}
proxy_port=${PROXY_PORT:-18096}

for tool in valgrind curl nginx h2load; do
  command -v "$tool" >/dev/null || missing=1
done
if [ -n "${missing:-}" ]; then
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind curl nginx nghttp2-client >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  (cd "$root" && cargo build -j2 --profile profiling -p proxy-bin)
  BIN="$root/target/profiling/portcullis"
fi

work=$(mktemp -d)
chmod 755 "$work"
OUT=${OUT:-$work}
mkdir -p "$OUT"
origin_listen="listen 127.0.0.1:$origin_port;"
upstream="{ location = \"127.0.0.1:$origin_port\" }"
# A self-signed CA: $work/$1.pem and $work/$1.key.
make_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/$1.key" \
    -out "$work/$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null
}
# A certificate for CN=$1 signed by CA $2 with extension $3: $work/$1.pem
# and $work/$1.key.
issue() {
  local name=$1 ca=$2 ext=$3
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/$name.key" \
    -out "$work/$name.csr" -subj "/CN=$name" 2>/dev/null
  printf '%s\nbasicConstraints=critical,CA:FALSE\n' "$ext" > "$work/$name.ext"
  openssl x509 -req -in "$work/$name.csr" -CA "$work/$ca.pem" -CAkey "$work/$ca.key" -CAcreateserial \
    -out "$work/$name.pem" -days 2 -extfile "$work/$name.ext" 2>/dev/null
}
if [ -n "${UPSTREAM_TLS:-}" ]; then
  make_ca ca
  issue origin ca "subjectAltName=DNS:bench.local"
  chmod 644 "$work/origin.key"
  origin_listen="listen 127.0.0.1:$origin_port ssl; ssl_certificate $work/origin.pem; ssl_certificate_key $work/origin.key;"
  upstream="{ location = \"127.0.0.1:$origin_port\", tls = true, tls_options = { ca_cert_path = \"$work/ca.pem\", sni = \"bench.local\" } }"
fi
upstream_options=""
if [ -n "${H2_UPSTREAM:-}" ]; then
  origin_listen="listen 127.0.0.1:$origin_port http2;"
  upstream_options=', upstream_options = ["force_http2_upstream"]'
fi
client_tls=()
[ -z "${H2C:-}" ] || client_tls=(--http2-prior-knowledge)
proxy_url="http://127.0.0.1:$proxy_port"
proxy_listen="listen_port = $proxy_port"
app_tls=""
if [ -n "${TLS:-}${CLIENT_AUTH:-}${HTTP2:-}" ]; then
  make_ca server-ca
  issue proxy server-ca "subjectAltName=DNS:bench.local"
  proxy_listen="listen_port_tls = $proxy_port"
  app_tls="tls = { tls_cert_path = \"$work/proxy.pem\", tls_cert_key_path = \"$work/proxy.key\" }"
  proxy_url="https://bench.local:$proxy_port"
  version=--http1.1
  [ -z "${HTTP2:-}" ] || version=--http2
  client_tls=("$version" --tlsv1.3 --resolve "bench.local:$proxy_port:127.0.0.1" --cacert "$work/server-ca.pem")
  if [ -n "${CLIENT_AUTH:-}" ]; then
    make_ca client-ca
    issue client client-ca "extendedKeyUsage=clientAuth"
    app_tls="tls = { tls_cert_path = \"$work/proxy.pem\", tls_cert_key_path = \"$work/proxy.key\", client_ca_cert_path = \"$work/client-ca.pem\" }"
    client_tls+=(--cert "$work/client.pem" --key "$work/client.key")
  fi
  if [ -n "${NEW_CONNECTIONS:-}" ]; then
    # The proxy closes after each answer; curl opens the next connection
    # resuming the session from its cache.
    client_tls+=(-H "Connection: close")
  fi
  if [ -n "${FULL_HANDSHAKES:-}" ]; then
    client_tls+=(--no-sessionid)
  fi
fi
cat > "$work/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/origin-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        $origin_listen
        location / { default_type text/plain; return 200 "hello from the origin\n"; }
    }
}
EOF
cat > "$work/portcullis.toml" <<EOF
$proxy_listen
listen_address_v4 = "127.0.0.1"
worker_threads = 1
default_application = "bench"
[log]
level = "warn"
access_log = false
[apps.bench]
server_name = "bench.local"
$app_tls
reverse_proxy = [{ upstream = [$upstream]$upstream_options }]
EOF
if [ -n "${METRICS:-}" ]; then
  printf '[admin]\nlisten_address = "127.0.0.1:18097"\n' >> "$work/portcullis.toml"
fi
nginx -c "$work/origin.conf" -e "$work/origin-error.log" &
origin=$!
trap 'kill "$origin" 2>/dev/null; wait "$origin" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -sk -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$origin_port/" && break
  curl -sk -o /dev/null "http://127.0.0.1:$origin_port/" && break
  curl -sk -o /dev/null "https://127.0.0.1:$origin_port/" && break
  sleep 0.1
done
kill -0 "$origin" 2>/dev/null || { echo "the origin did not start: $(cat "$work/origin-error.log")" >&2; exit 1; }

count() {
  local n=$1 out="$OUT/callgrind.$1"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --config "$work/portcullis.toml" \
    >/dev/null 2>"$work/valgrind.$n.log" &
  local proxy=$!
  for _ in $(seq 1 100); do
    curl -s "${client_tls[@]}" -o /dev/null "$proxy_url/" && break
    sleep 0.2
  done
  local status
  status=$(curl -s "${client_tls[@]}" -o /dev/null -w '%{http_code}' "$proxy_url/")
  [ "$status" = 200 ] || { echo "the proxy answered $status, not 200" >&2; exit 1; }
  # URL globbing sends the requests one after another on one connection
  # (or, with NEW_CONNECTIONS, on one connection each). For h2c, h2load:
  # curl 7.88 fails the second stream on a reused prior-knowledge
  # connection (nghttp and h2load do not).
  if [ -n "${H2C:-}" ]; then
    h2load -n "$n" -c 1 -m 1 "$proxy_url/small" | grep -q "$n succeeded" \
      || { echo "h2load: not every request succeeded" >&2; exit 1; }
  else
    curl -s "${client_tls[@]}" -o /dev/null "$proxy_url/small?[1-$n]"
  fi
  kill -TERM "$proxy"
  wait "$proxy" 2>/dev/null || true
  awk '/^summary:/ {print $2}' "$out"
}

i1=$(count "$n1")
i2=$(count "$n2")
echo "instructions per request: $(( (i2 - i1) / (n2 - n1) ))  (callgrind files in $OUT)"
