"""The origin and each proxy's configuration: same route, same upstream
keep-alive pool (64 idle connections), no access log, one worker, nothing
but 127.0.0.1."""

POOL = 64
SMALL_BODY = "hello from the origin\n"


def write_site(work):
    www = work / "www"
    www.mkdir()
    (www / "1k").write_bytes(b"x" * 1024)
    (www / "100k").write_bytes(b"y" * 100 * 1024)


def origin_command(work, port):
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
        location = /small {{ default_type text/plain; return 200 "{SMALL_BODY.strip()}\\n"; }}
        location / {{ root {work}/www; }}
    }}
}}
""")
    return ["nginx", "-c", str(conf), "-e", str(work / "origin-error.log")]


def command(name, work, binary, port, h2c_port, origin):
    """The command line and extra environment that start proxy `name`."""
    return {
        "portcullis": portcullis,
        "nginx": nginx,
        "caddy": caddy,
        "haproxy": haproxy,
    }[name](work, binary, port, h2c_port, origin)


def portcullis(work, binary, port, h2c_port, origin):
    conf = work / "portcullis.toml"
    conf.write_text(f"""
listen_port = {port}
listen_address_v4 = "127.0.0.1"
tcp_listen_backlog = 4096
worker_threads = 1
max_clients = 30000
upstream_keepalive = {POOL}
default_application = "bench"

[timeouts]
client_idle = "300s"
upstream_idle = "300s"

[log]
level = "warn"
access_log = false

[apps.bench]
server_name = "bench.local"
reverse_proxy = [{{ upstream = [{{ location = "127.0.0.1:{origin}" }}] }}]
""")
    return [binary, "--config", str(conf)], {}


def nginx(work, binary, port, h2c_port, origin):
    conf = work / "nginx-proxy.conf"
    conf.write_text(f"""
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
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
""")
    return ["nginx", "-c", str(conf), "-e", str(work / "nginx-proxy-error.log")], {}


def caddy(work, binary, port, h2c_port, origin):
    conf = work / "Caddyfile"
    conf.write_text(f"""{{
    admin off
    auto_https off
    servers {{
        protocols h1 h2c
    }}
}}

:{port} {{
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:{origin} {{
        transport http {{
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


def haproxy(work, binary, port, h2c_port, origin):
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
    default_backend origin

backend origin
    server origin 127.0.0.1:{origin} pool-max-conn {POOL}
""")
    return ["haproxy", "-db", "-f", str(conf)], {}
