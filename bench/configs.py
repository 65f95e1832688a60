"""The origin and each proxy's configuration: same route, same upstream
keep-alive pool (64 idle connections), the same certificate on the TLS port
(ECDSA P-256, HTTP/1.1 and HTTP/2 by ALPN), no access log, one worker,
nothing but 127.0.0.1. Requests for TLS_UPSTREAM_HOST go to the origin's
TLS port instead (a bench.local certificate from a CA of the run's own,
which every proxy verifies), with SNI bench.local and HTTP/1.1.

HTTP/2 upstream: H2_UPSTREAM_PATH goes to the origin's h2c port (HTTP/2
with prior knowledge) instead: portcullis `force_http2_upstream`, HAProxy
`proto h2`, Caddy `versions h2c`; nginx 1.22 speaks HTTP/2 upstream only
for gRPC (`grpc_pass`), so it has no such route.

Layer-4 routing: TLS connections whose ClientHello names LAYER4_HOST are
passed whole, unopened, to the origin's TLS port: portcullis on its TLS
port beside the apps, nginx (`stream`, `ssl_preread`) and HAProxy (`mode
tcp`, `req.ssl_sni`) on a port of their own; Caddy needs a plugin
(caddy-l4) that Debian does not ship.

BENCH_METRICS=1 gives portcullis (not the baseline) an admin listener, so
that every request is counted for /metrics: with BENCH_BASELINE naming the
same binary, the rounds measure metrics on against off."""

import os
import subprocess

POOL = 64
SMALL_BODY = "hello from the origin\n"
TLS_UPSTREAM_HOST = "tls-upstream.local"
LAYER4_HOST = "pass.local"
H2_UPSTREAM_PATH = "/h2up/small"


def write_site(work):
    www = work / "www"
    www.mkdir()
    (www / "1k").write_bytes(b"x" * 1024)
    (www / "100k").write_bytes(b"y" * 100 * 1024)


def write_certs(work):
    """A self-signed ECDSA P-256 certificate for bench.local and 127.0.0.1,
    as separate files and as HAProxy's combined PEM."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=bench.local",
         "-addext", "subjectAltName=DNS:bench.local,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    (work / "combined.pem").write_text(cert.read_text() + key.read_text())
    key.chmod(0o644)  # nginx reads it before dropping root; the files are throwaway
    # The origin's TLS port: a leaf for bench.local issued by a CA of its
    # own, which the proxies trust (a self-signed leaf is a CA to OpenSSL
    # and refused as a server certificate by rustls).
    ca, ca_key = work / "upstream-ca.pem", work / "upstream-ca.key"
    leaf, leaf_key, csr = work / "upstream.pem", work / "upstream.key", work / "upstream.csr"
    ext = work / "upstream.ext"
    ext.write_text("subjectAltName=DNS:bench.local\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n")
    for cmd in (
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(ca_key), "-out", str(ca), "-days", "30", "-subj", "/CN=bench upstream CA"],
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(leaf_key), "-out", str(csr), "-subj", "/CN=bench.local"],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(leaf), "-days", "30", "-extfile", str(ext)],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    leaf_key.chmod(0o644)


def origin_command(work, port, tls_port, h2c_port):
    conf = work / "origin.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/origin.pid;
error_log {work}/origin-error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        listen 127.0.0.1:{tls_port} ssl backlog=4096;
        listen 127.0.0.1:{h2c_port} http2 backlog=4096;
        http2_max_concurrent_streams 1000;
        ssl_certificate {work}/upstream.pem;
        ssl_certificate_key {work}/upstream.key;
        ssl_session_cache shared:origin:10m;
        location = /small {{ default_type text/plain; return 200 "{SMALL_BODY.strip()}\\n"; }}
        location = {H2_UPSTREAM_PATH} {{ default_type text/plain; return 200 "{SMALL_BODY.strip()}\\n"; }}
        location / {{ root {work}/www; }}
    }}
}}
""")
    return ["nginx", "-c", str(conf), "-e", str(work / "origin-error.log")]


def command(name, work, binary, ports, origin):
    """The command line and extra environment that start proxy `name`;
    `ports` holds the cleartext, h2c, TLS and layer-4 ports, `origin` the
    origin's cleartext and TLS ports."""
    metrics = bool(os.environ.get("BENCH_METRICS"))
    return {
        "portcullis": lambda *a: portcullis(*a, admin=metrics),
        "baseline": portcullis,
        "nginx": nginx,
        "caddy": caddy,
        "haproxy": haproxy,
    }[name](work, binary, ports, origin)


# The admin listener's port, when BENCH_METRICS asks for one.
ADMIN_PORT = 18099


def portcullis(work, binary, ports, origins, admin=False):
    port, _, tls_port, _ = ports
    origin, origin_tls, origin_h2c = origins
    conf = work / "portcullis.toml"
    admin_section = f'[admin]\nlisten_address = "127.0.0.1:{ADMIN_PORT}"\n' if admin else ""
    conf.write_text(f"""
listen_port = {port}
listen_port_tls = {tls_port}
listen_address_v4 = "127.0.0.1"
tcp_listen_backlog = 4096
worker_threads = 1
max_clients = 30000
upstream_keepalive = {POOL}
default_application = "bench"

[http3]
max_idle_timeout = "300s"

[timeouts]
client_idle = "300s"
upstream_idle = "300s"

[log]
level = "warn"
access_log = false

[apps.bench]
server_name = "bench.local"
# Both ports are set: without this, cleartext requests would get rpxy's
# default redirection to HTTPS instead of the page.
tls = {{ tls_cert_path = "{work}/cert.pem", tls_cert_key_path = "{work}/key.pem", https_redirection = false }}
reverse_proxy = [
  {{ upstream = [{{ location = "127.0.0.1:{origin}" }}] }},
  {{ path = "{H2_UPSTREAM_PATH}", upstream = [{{ location = "127.0.0.1:{origin_h2c}" }}], upstream_options = ["force_http2_upstream"] }},
]

[apps.tls_upstream]
server_name = "{TLS_UPSTREAM_HOST}"
reverse_proxy = [{{ upstream = [{{ location = "127.0.0.1:{origin_tls}", tls = true, tls_options = {{ ca_cert_path = "{work}/upstream-ca.pem", sni = "bench.local" }} }}] }}]

[layer4]
routes = [{{ server_name = "{LAYER4_HOST}", upstream = [{{ location = "127.0.0.1:{origin_tls}" }}] }}]

{admin_section}""")
    return [binary, "--config", str(conf)], {}


def nginx(work, binary, ports, origins):
    port, h2c_port, tls_port, l4_port = ports
    origin, origin_tls, _ = origins
    conf = work / "nginx-proxy.conf"
    conf.write_text(f"""
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid {work}/nginx-proxy.pid;
error_log {work}/nginx-proxy-error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 30000; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream origin {{
        server 127.0.0.1:{origin};
        keepalive {POOL};
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        listen 127.0.0.1:{h2c_port} http2 backlog=4096;
        listen 127.0.0.1:{tls_port} ssl http2 backlog=4096;
        ssl_certificate {work}/cert.pem;
        ssl_certificate_key {work}/key.pem;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
    upstream origin_tls {{
        server 127.0.0.1:{origin_tls};
        keepalive {POOL};
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name {TLS_UPSTREAM_HOST};
        location / {{
            proxy_pass https://origin_tls;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {work}/upstream-ca.pem;
            proxy_ssl_server_name on;
            proxy_ssl_name bench.local;
            proxy_ssl_session_reuse on;
        }}
    }}
}}
stream {{
    map $ssl_preread_server_name $layer4 {{
        {LAYER4_HOST} 127.0.0.1:{origin_tls};
        default 127.0.0.1:1;
    }}
    server {{
        listen 127.0.0.1:{l4_port} backlog=4096;
        ssl_preread on;
        proxy_pass $layer4;
    }}
}}
""")
    return ["nginx", "-c", str(conf), "-e", str(work / "nginx-proxy-error.log")], {}


def caddy(work, binary, ports, origins):
    port, _, tls_port, _ = ports
    origin, origin_tls, origin_h2c = origins
    h2_upstream = f"""reverse_proxy {H2_UPSTREAM_PATH} 127.0.0.1:{origin_h2c} {{
        transport http {{
            versions h2c
            keepalive 300s
            keepalive_idle_conns {POOL}
            keepalive_idle_conns_per_host {POOL}
        }}
    }}"""
    proxy = f"""reverse_proxy 127.0.0.1:{origin} {{
        transport http {{
            keepalive 300s
            keepalive_idle_conns {POOL}
            keepalive_idle_conns_per_host {POOL}
        }}
    }}"""
    conf = work / "Caddyfile"
    conf.write_text(f"""{{
    admin off
    auto_https off
    default_sni bench.local
    servers {{
        protocols h1 h2 h2c h3
    }}
}}

:{port} {{
    bind 127.0.0.1
    {proxy}
}}

https://:{tls_port} {{
    bind 127.0.0.1
    tls {work}/cert.pem {work}/key.pem
    route {{
        {h2_upstream}
        {proxy}
    }}
}}

http://{TLS_UPSTREAM_HOST}:{port} {{
    bind 127.0.0.1
    reverse_proxy https://127.0.0.1:{origin_tls} {{
        transport http {{
            tls_trusted_ca_certs {work}/upstream-ca.pem
            tls_server_name bench.local
            versions 1.1
            keepalive 300s
            keepalive_idle_conns {POOL}
            keepalive_idle_conns_per_host {POOL}
        }}
    }}
}}
""")
    env = {
        "GOMAXPROCS": "1",
        "HOME": str(work),
        "XDG_DATA_HOME": str(work / "caddy-data"),
        "XDG_CONFIG_HOME": str(work / "caddy-config"),
    }
    return ["caddy", "run", "--config", str(conf), "--adapter", "caddyfile"], env


def haproxy(work, binary, ports, origins):
    port, h2c_port, tls_port, l4_port = ports
    origin, origin_tls, origin_h2c = origins
    conf = work / "haproxy.cfg"
    conf.write_text(f"""
global
    nbthread 1
    maxconn 9500
    pidfile {work}/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    http-reuse always
    option forwardfor

frontend proxy
    bind 127.0.0.1:{port}
    bind 127.0.0.1:{h2c_port} proto h2
    bind 127.0.0.1:{tls_port} ssl crt {work}/combined.pem alpn h2,http/1.1
    use_backend origin_tls if {{ hdr(host) -i {TLS_UPSTREAM_HOST} }}
    use_backend origin_h2c if {{ path {H2_UPSTREAM_PATH} }}
    default_backend origin

backend origin_h2c
    server origin_h2c 127.0.0.1:{origin_h2c} proto h2 pool-max-conn {POOL}

backend origin
    server origin 127.0.0.1:{origin} pool-max-conn {POOL}

backend origin_tls
    server origin_tls 127.0.0.1:{origin_tls} ssl verify required ca-file {work}/upstream-ca.pem sni str(bench.local) verifyhost bench.local pool-max-conn {POOL}

frontend layer4
    mode tcp
    bind 127.0.0.1:{l4_port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend layer4_origin if {{ req.ssl_sni -i {LAYER4_HOST} }}

backend layer4_origin
    mode tcp
    server origin_tls 127.0.0.1:{origin_tls}
""")
    return ["haproxy", "-db", "-f", str(conf)], {}
