#!/usr/bin/env bash
# HTTP/3 interoperability with an independent implementation: ngtcp2's
# example client (gtlsclient: ngtcp2 + nghttp3 + GnuTLS, from Debian's
# ngtcp2-client) sends a GET and a 1 MiB POST through portcullis to a
# Python origin. Run by .ci/run; needs a release build of portcullis.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v gtlsclient >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngtcp2-client >/dev/null
fi
work=$(mktemp -d)
origin_port=18190
cat > "$work/origin.py" <<'PY'
import hashlib, http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(b"hello over http/3\n")

    def do_POST(self):
        data = b""
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode())

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
cat > "$work/portcullis.toml" <<TOML
listen_port = 18191
listen_port_tls = 18192
listen_address_v4 = "127.0.0.1"
# gtlsclient 0.12 sends "localhost" as the server name whatever --sni says:
# the default app answers handshakes for names no app has.
default_application = "interop"
[http3]
[log]
access_log = true
[apps.interop]
server_name = "interop.local"
tls = { tls_cert_path = "$work/cert.pem", tls_cert_key_path = "$work/key.pem", self_signed_if_missing = true }
reverse_proxy = [{ upstream = [{ location = "127.0.0.1:$origin_port" }] }]
TOML
python3 "$work/origin.py" "$origin_port" &
origin=$!
./target/release/portcullis --config "$work/portcullis.toml" >"$work/access.log" 2>"$work/portcullis.log" &
proxy=$!
trap 'kill "$proxy" "$origin" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  grep -q "listening for HTTP/3" "$work/portcullis.log" &&
    (exec 3<>"/dev/tcp/127.0.0.1/$origin_port") 2>/dev/null && break
  sleep 0.1
done

h3() {
  timeout 30 gtlsclient --quiet --exit-on-all-streams-close --download="$work/out" \
    "$@" 127.0.0.1 18192 "https://interop.local:18192/$path" >"$work/client.log" 2>&1 ||
    { cat "$work/client.log" "$work/portcullis.log" >&2; return 1; }
}
mkdir "$work/out"
path=hello h3
grep -qx "hello over http/3" "$work/out/hello"
head -c 1048576 /dev/urandom > "$work/body"
path=upload h3 -m POST -d "$work/body"
want="1048576 $(sha256sum "$work/body" | cut -d' ' -f1)"
test "$(cat "$work/out/upload")" = "$want"
grep -q '"GET /hello HTTP/3.0" 200' "$work/access.log"
grep -q '"POST /upload HTTP/3.0" 200' "$work/access.log"
echo "HTTP/3 interop: GET and a 1 MiB POST through portcullis with ngtcp2's client"
