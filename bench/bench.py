"""Runs each proxy in turn in front of one origin and measures it.

Every proxy gets the same route, the same upstream keep-alive pool (64), no
access log and one worker, pinned to core 0; the origin and the load
generators share core 1. Results go to a markdown table and a PNG chart.
Called by run.sh, which installs the tools and builds portcullis.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import configs
import report

ORIGIN_PORT = 18080
ORIGIN_TLS_PORT = 18444
# The origin in h2c (prior knowledge), for the HTTP/2-upstream cell.
ORIGIN_H2C_PORT = 18445
PROXY_PORT = 18081
H2C_PORT = 18082
TLS_PORT = 18443
# Layer-4 routing of nginx and HAProxy (portcullis routes on TLS_PORT).
L4_PORT = 18446
# Clients at once in the new-tunnel cell, each making one connection.
L4_BATCH = 64
# Full-handshake clients run at once (each opens one connection at a time).
HANDSHAKE_CLIENTS = 4
PROXIES = ["portcullis", "nginx", "caddy", "haproxy"]
CELLS = ("h1", "tls", "handshake", "resumed", "h2", "h2c", "h2_up", "h3", "upstream_tls", "large", "l4", "l4_new")
# Proxies that serve HTTP/3 here (nginx 1.22 and HAProxy 2.6 as packaged do not).
HTTP3 = ("portcullis", "baseline", "caddy")
# Proxies that speak HTTP/2 to an upstream for any request (nginx 1.22 only
# for gRPC, with grpc_pass).
H2_UPSTREAM = ("portcullis", "baseline", "caddy", "haproxy")
# Proxies that route by SNI at layer 4 here, and where.
LAYER4 = {"portcullis": TLS_PORT, "baseline": TLS_PORT, "nginx": L4_PORT, "haproxy": L4_PORT}


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def cores():
    """Proxy core and load core, or no pinning on a single core."""
    n = os.cpu_count() or 1
    return (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if n >= 2 else ([], [])


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def tree(pid):
    """The pid and its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            children = []
        todo.extend(int(c) for c in children)
    return pids


def cpu_seconds(pid):
    """User and kernel CPU seconds of the process tree."""
    ticks = os.sysconf("SC_CLK_TCK")
    user = kernel = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        kernel += int(fields[12])
    return user / ticks, kernel / ticks


def memory_kib(pid, field):
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def duration_ms(text):
    value, unit = float(text[:-2] if text.endswith(("us", "ms")) else text[:-1]), text
    if unit.endswith("us"):
        return value / 1000
    if unit.endswith("ms"):
        return value
    return value * 1000


def rate_mb(text):
    number, unit = re.match(r"([\d.]+)([KMG]?B)", text).groups()
    return float(number) * {"B": 1e-6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}[unit]


def wrk(load, url, seconds, connections, host=None):
    cmd = load + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if host:
        cmd[-1:-1] = ["-H", f"Host: {host}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "mb_per_s": rate_mb(re.search(r"Transfer/sec:\s+(\S+)", out).group(1)),
        "errors": 0,
    }
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        result[f"p{pct}_ms"] = duration_ms(m.group(1)) if m else None
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return result


def h2load_result(out):
    """h2load's req/s, MB/s, successes and failures."""
    finished = re.search(r"finished in [^,]+, ([\d.]+) req/s, (\S+)/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    return {
        "rps": float(finished.group(1)),
        "mb_per_s": rate_mb(finished.group(2)),
        "requests": int(done.group(2)),
        "errors": int(done.group(3)) + int(done.group(4)),
    }


def h2load(load, url, seconds):
    cmd = load + ["h2load", "-c16", "-m16", "-t1", "-D", str(seconds), url]
    return h2load_result(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def layer4_throughput(load, port, seconds):
    """100 KiB responses over 16 TLS connections to the origin, passed
    whole by the proxy by their SNI: MB/s through the tunnel."""
    cmd = load + ["h2load", "--h1", "-c16", "-m1", "-t1", "-D", str(seconds),
                  f"--connect-to=127.0.0.1:{port}", f"https://{configs.LAYER4_HOST}/100k"]
    return h2load_result(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def layer4_new(load, port, seconds):
    """A new tunnel per request: batches of L4_BATCH clients each open one
    TLS connection through the proxy to the origin and fetch /small, until
    `seconds` have passed."""
    cmd = load + ["h2load", "--h1", f"-c{L4_BATCH}", f"-n{L4_BATCH}", "-t1",
                  f"--connect-to=127.0.0.1:{port}", f"https://{configs.LAYER4_HOST}/small"]
    started = time.monotonic()
    succeeded = failed = 0
    while time.monotonic() - started < seconds:
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        if not done:
            failed += L4_BATCH
            continue
        succeeded += int(done.group(1))
        failed += int(done.group(2)) + int(done.group(3))
    elapsed = time.monotonic() - started
    return {"rps": succeeded / elapsed, "requests": succeeded, "errors": failed}


def h3load(load, binary, seconds):
    """16 HTTP/3 connections with 16 requests in flight on each."""
    cmd = load + [binary, f"127.0.0.1:{TLS_PORT}", "bench.local", "/small", "16", "16", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"requests (\d+) errors (\d+) seconds ([\d.]+)", out)
    requests, errors, elapsed = int(m.group(1)), int(m.group(2)), float(m.group(3))
    return {"rps": requests / elapsed, "requests": requests, "errors": errors}


def handshakes(load, seconds):
    """A full TLS handshake per request: `openssl s_time -new` (no session
    reuse) fetching /small over HTTP/1.0, several clients at once."""
    cmd = load + ["openssl", "s_time", "-connect", f"127.0.0.1:{TLS_PORT}", "-new",
                  "-time", str(seconds), "-www", "/small"]
    clients = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for _ in range(HANDSHAKE_CLIENTS)]
    total = 0
    for client in clients:
        out, _ = client.communicate()
        m = re.search(r"(\d+) connections in [\d.]+ real seconds", out)
        total += int(m.group(1)) if m else 0
    return {"rps": total / seconds, "requests": total, "errors": 0 if total else 1}


def resumed_handshakes(load, seconds):
    """A resumed TLS 1.3 handshake per request: `openssl s_time -reuse`, which
    resumes the first connection's session by ticket on every later one and
    prints `r` for a resumed handshake, `*` for a full one. A full handshake
    after the first counts as an error: the cell measures resumption only."""
    cmd = load + ["openssl", "s_time", "-connect", f"127.0.0.1:{TLS_PORT}", "-reuse",
                  "-time", str(seconds), "-www", "/small"]
    clients = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for _ in range(HANDSHAKE_CLIENTS)]
    total = full = 0
    for client in clients:
        out, _ = client.communicate()
        m = re.search(r"(\d+) connections in [\d.]+ real seconds", out)
        total += int(m.group(1)) if m else 0
        full += max(out.count("*") - 1, 0) if m else 1
    return {"rps": total / seconds, "requests": total, "errors": full}


class Proxy:
    """One proxy process, started from its config in the work directory."""

    def __init__(self, name, work, binary, pin):
        self.name, self.work = name, work
        ports = (PROXY_PORT, H2C_PORT, TLS_PORT, L4_PORT)
        cmd, env = configs.command(name, work, binary, ports, (ORIGIN_PORT, ORIGIN_TLS_PORT, ORIGIN_H2C_PORT))
        self.h2c_port = PROXY_PORT if name in ("portcullis", "baseline", "caddy") else H2C_PORT
        self.l4_port = LAYER4.get(name)
        self.process = subprocess.Popen(
            pin + cmd,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(work / f"{name}.stderr", "w"),
            start_new_session=True,
        )
        wait_port(PROXY_PORT)
        wait_port(TLS_PORT)
        if self.l4_port:
            wait_port(self.l4_port)

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def measured(proxy, run):
    """Runs `run()` and adds the proxy's CPU time per request to its result."""
    user0, kernel0 = cpu_seconds(proxy.pid)
    result = run()
    user1, kernel1 = cpu_seconds(proxy.pid)
    if result.get("requests"):
        per = 1e6 / result["requests"]
        result["user_us_per_request"] = (user1 - user0) * per
        result["kernel_us_per_request"] = (kernel1 - kernel0) * per
        result["cpu_us_per_request"] = (user1 - user0 + kernel1 - kernel0) * per
        if result["cpu_us_per_request"]:
            result["per_cpu_second"] = 1e6 / result["cpu_us_per_request"]
    return result


def idle_memory(proxy, count):
    """RSS growth per idle keep-alive connection, in KiB."""
    before = memory_kib(proxy.pid, "VmRSS")
    holder = subprocess.Popen(
        ["/usr/bin/python3", str(Path(__file__).with_name("idle.py")), str(PROXY_PORT), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = holder.stdout.readline().strip()
    held = int(line.split()[1]) if line.startswith("holding") else 0
    time.sleep(0.5)
    after = memory_kib(proxy.pid, "VmRSS")
    holder.terminate()
    holder.wait()
    return {
        "held": held,
        "kib_per_connection": (after - before) / held if held else None,
        "rss_with_idle_kib": after,
    }


def check_answers(proxy):
    """Every URL the cells load answers 200 with the origin's body, so that
    no cell measures a redirection or an error page (wrk counts 3xx as
    success)."""
    small = len(configs.SMALL_BODY.strip()) + 1
    checks = [
        ([f"http://127.0.0.1:{PROXY_PORT}/small"], small),
        ([f"http://127.0.0.1:{PROXY_PORT}/100k"], 100 * 1024),
        (["--http2-prior-knowledge", f"http://127.0.0.1:{proxy.h2c_port}/small"], small),
        (["-k", f"https://127.0.0.1:{TLS_PORT}/small"], small),
        (["-H", f"Host: {configs.TLS_UPSTREAM_HOST}", f"http://127.0.0.1:{PROXY_PORT}/small"], small),
    ]
    if proxy.name in H2_UPSTREAM:
        checks.append((["-k", "--http2", f"https://127.0.0.1:{TLS_PORT}{configs.H2_UPSTREAM_PATH}"], small))
    if proxy.l4_port:
        host = configs.LAYER4_HOST
        checks.append((["-k", "--resolve", f"{host}:{proxy.l4_port}:127.0.0.1", f"https://{host}:{proxy.l4_port}/small"], small))
    for extra, size in checks:
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"] + extra,
                             capture_output=True, text=True).stdout
        if out != f"200 {size}":
            raise SystemExit(f"{proxy.name}: {' '.join(extra)} answered {out or 'nothing'}, not 200 with {size} bytes")


def bench_proxy(name, args, work, load, pin, idle):
    log(f"{name}: starting")
    binary = args.baseline if name == "baseline" else args.portcullis
    proxy = Proxy(name, work, binary, pin)
    base = f"http://127.0.0.1:{PROXY_PORT}"
    tls = f"https://127.0.0.1:{TLS_PORT}"
    upstream_tls = configs.TLS_UPSTREAM_HOST
    rows = {}

    def cell(key, label, run, warm=None, serves=True):
        """Measures `run` as cell `key`, unless BENCH_CELLS leaves it out or
        this proxy does not serve it here (an empty cell)."""
        rows[key] = {}
        if key in args.cells and serves:
            if warm:
                warm()
            log(f"{name}: {label}")
            rows[key] = measured(proxy, run)

    try:
        check_answers(proxy)
        wrk(load, f"{base}/small", 1, 64)  # warm up: pools filled, caches hot
        cell("h1", "HTTP/1.1 keep-alive", lambda: wrk(load, f"{base}/small", args.seconds, 64))
        cell("h2c", "h2c", lambda: h2load(load, f"http://127.0.0.1:{proxy.h2c_port}/small", args.seconds))
        cell("tls", "HTTP/1.1 keep-alive over TLS", lambda: wrk(load, f"{tls}/small", args.seconds, 64),
             warm=lambda: wrk(load, f"{tls}/small", 1, 64))
        cell("handshake", "a full TLS handshake per request", lambda: handshakes(load, args.seconds))
        cell("resumed", "a resumed TLS handshake per request", lambda: resumed_handshakes(load, args.seconds))
        cell("h2", "HTTP/2 over TLS", lambda: h2load(load, f"{tls}/small", args.seconds))
        cell("h2_up", "HTTP/2 over TLS to an h2c upstream",
             lambda: h2load(load, f"{tls}{configs.H2_UPSTREAM_PATH}", args.seconds),
             warm=lambda: h2load(load, f"{tls}{configs.H2_UPSTREAM_PATH}", 1), serves=name in H2_UPSTREAM)
        cell("upstream_tls", "HTTP/1.1 keep-alive to a TLS upstream",
             lambda: wrk(load, f"{base}/small", args.seconds, 64, upstream_tls),
             warm=lambda: wrk(load, f"{base}/small", 1, 64, upstream_tls))
        cell("h3", "HTTP/3, 16 conns × 16 streams", lambda: h3load(load, args.h3load, args.seconds),
             warm=lambda: h3load(load, args.h3load, 1), serves=name in HTTP3)
        cell("large", "100 KiB responses", lambda: wrk(load, f"{base}/100k", args.seconds, 16))
        cell("l4", "layer-4 tunnels by SNI, 100 KiB responses",
             lambda: layer4_throughput(load, proxy.l4_port, args.seconds), serves=bool(proxy.l4_port))
        cell("l4_new", "a new layer-4 tunnel per request",
             lambda: layer4_new(load, proxy.l4_port, args.seconds), serves=bool(proxy.l4_port))
        rows["peak_rss_kib"] = memory_kib(proxy.pid, "VmHWM")
        if idle and "idle" in args.cells:
            log(f"{name}: {args.idle} idle connections")
            rows["idle"] = idle_memory(proxy, args.idle)
        return rows
    finally:
        proxy.stop()


def combine(rounds):
    """One result from several rounds: the median of every measured figure,
    the highest peak RSS, and each round's HTTP/1.1 req/s for the spread."""
    combined = {"rounds_h1_rps": [r["h1"].get("rps") for r in rounds if r["h1"]]}
    for cell in CELLS:
        keys = {k for r in rounds for k, v in r[cell].items() if isinstance(v, (int, float))}
        values = {k: [r[cell][k] for r in rounds if k in r[cell]] for k in sorted(keys)}
        # Failures add up; everything else is the median round's.
        combined[cell] = {k: sum(v) if k == "errors" else statistics.median(v) for k, v in values.items()}
    combined["peak_rss_kib"] = max(r["peak_rss_kib"] for r in rounds)
    combined["idle"] = next((r["idle"] for r in rounds if "idle" in r), None)
    return combined


def versions(binary, baseline):
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    return {
        "portcullis": first_line([binary, "--version"]),
        **({"baseline": f"{first_line([baseline, '--version'])} ({baseline})"} if baseline else {}),
        "nginx": first_line(["nginx", "-v"]),
        "caddy": first_line(["caddy", "version"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "h2load": first_line(["h2load", "--version"]),
    }


def machine():
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} × {model}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--portcullis", required=True)
    parser.add_argument("--h3load", required=True)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--idle", type=int, default=int(os.environ.get("BENCH_IDLE", "9000")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    # An earlier portcullis binary, run as one more proxy in the same rounds:
    # the "before" of a change, measured beside its "after".
    parser.add_argument("--baseline", default=os.environ.get("BENCH_BASELINE"))
    # The peers to run (default all): BENCH_PEERS=nginx,haproxy for a shorter run.
    parser.add_argument("--peers", default=os.environ.get("BENCH_PEERS", ",".join(PROXIES[1:])))
    parser.add_argument("--out", default=os.environ.get("BENCH_OUT", str(Path(__file__).with_name("results"))))
    # The cells to measure (default all, and the idle row): BENCH_CELLS=l4,l4_new
    # for the layer-4 rows alone.
    parser.add_argument("--cells", default=os.environ.get("BENCH_CELLS", ",".join(CELLS + ("idle",))))
    args = parser.parse_args()
    args.cells = set(args.cells.split(","))
    if os.environ.get("BENCH_SMOKE"):
        args.seconds, args.idle, args.rounds = 1, 200, 1

    pin, load = cores()
    work = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    # nginx's workers drop root: they must be able to read the origin's files.
    work.chmod(0o755)
    origin = None
    try:
        configs.write_site(work)
        configs.write_certs(work)
        origin_cmd = configs.origin_command(work, ORIGIN_PORT, ORIGIN_TLS_PORT, ORIGIN_H2C_PORT)
        origin = subprocess.Popen(load + origin_cmd, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(ORIGIN_PORT)
        wait_port(ORIGIN_TLS_PORT)
        wait_port(ORIGIN_H2C_PORT)
        results = {"origin": {"h1": wrk(load, f"http://127.0.0.1:{ORIGIN_PORT}/small", args.seconds, 64)}}
        # Rounds interleave the proxies, so a slow spell of the machine
        # does not land on one of them; each figure is the median.
        proxies = ["portcullis"] + (["baseline"] if args.baseline else [])
        proxies += [p for p in PROXIES[1:] if p in args.peers.split(",")]
        rounds = {name: [] for name in proxies}
        for r in range(args.rounds):
            log(f"round {r + 1} of {args.rounds}")
            # Each round starts with another proxy, so that none is always
            # measured first (or right after the same neighbour).
            for name in proxies[r % len(proxies):] + proxies[:r % len(proxies)]:
                rounds[name].append(bench_proxy(name, args, work, load, pin, idle=r == 0))
        for name in proxies:
            results[name] = combine(rounds[name])
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "versions": versions(args.portcullis, args.baseline),
            "seconds": args.seconds,
            "rounds": args.rounds,
            "idle": args.idle,
            "pinned": bool(pin),
        }
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "latest.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        (out / "latest.md").write_text(report.markdown(meta, results))
        report.chart(results, out / "latest.png")
        print((out / "latest.md").read_text())
    finally:
        if origin:
            os.killpg(origin.pid, signal.SIGTERM)
            origin.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
