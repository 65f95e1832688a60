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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import configs
import report

ORIGIN_PORT = 18080
PROXY_PORT = 18081
H2C_PORT = 18082
PROXIES = ["portcullis", "nginx", "caddy", "haproxy"]


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
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


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


def wrk(load, url, seconds, connections):
    cmd = load + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
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


def h2load(load, url, seconds):
    cmd = load + ["h2load", "-c16", "-m16", "-t1", "-D", str(seconds), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finished = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    return {
        "rps": float(finished.group(1)),
        "requests": int(done.group(2)),
        "errors": int(done.group(3)) + int(done.group(4)),
    }


class Proxy:
    """One proxy process, started from its config in the work directory."""

    def __init__(self, name, work, binary, pin):
        self.name, self.work = name, work
        cmd, env = configs.command(name, work, binary, PROXY_PORT, H2C_PORT, ORIGIN_PORT)
        self.h2c_port = PROXY_PORT if name in ("portcullis", "caddy") else H2C_PORT
        self.process = subprocess.Popen(
            pin + cmd,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(work / f"{name}.stderr", "w"),
            start_new_session=True,
        )
        wait_port(PROXY_PORT)

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
    before = cpu_seconds(proxy.pid)
    result = run()
    spent = cpu_seconds(proxy.pid) - before
    if result.get("requests"):
        result["cpu_us_per_request"] = spent * 1e6 / result["requests"]
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


def bench_proxy(name, args, work, load, pin):
    log(f"{name}: starting")
    proxy = Proxy(name, work, args.portcullis, pin)
    base = f"http://127.0.0.1:{PROXY_PORT}"
    try:
        wrk(load, f"{base}/small", 1, 64)  # warm up: pools filled, caches hot
        rows = {}
        log(f"{name}: HTTP/1.1 keep-alive")
        rows["h1"] = measured(proxy, lambda: wrk(load, f"{base}/small", args.seconds, 64))
        log(f"{name}: h2c")
        rows["h2c"] = measured(proxy, lambda: h2load(load, f"http://127.0.0.1:{proxy.h2c_port}/small", args.seconds))
        log(f"{name}: 100 KiB responses")
        rows["large"] = measured(proxy, lambda: wrk(load, f"{base}/100k", args.seconds, 16))
        rows["peak_rss_kib"] = memory_kib(proxy.pid, "VmHWM")
        log(f"{name}: {args.idle} idle connections")
        rows["idle"] = idle_memory(proxy, args.idle)
        return rows
    finally:
        proxy.stop()


def versions(binary):
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    return {
        "portcullis": first_line([binary, "--version"]),
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
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--idle", type=int, default=int(os.environ.get("BENCH_IDLE", "9000")))
    parser.add_argument("--out", default=os.environ.get("BENCH_OUT", str(Path(__file__).with_name("results"))))
    args = parser.parse_args()
    if os.environ.get("BENCH_SMOKE"):
        args.seconds, args.idle = 1, 200

    pin, load = cores()
    work = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    # nginx's workers drop root: they must be able to read the origin's files.
    work.chmod(0o755)
    origin = None
    try:
        configs.write_site(work)
        origin_cmd = configs.origin_command(work, ORIGIN_PORT)
        origin = subprocess.Popen(load + origin_cmd, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(ORIGIN_PORT)
        results = {"origin": {"h1": wrk(load, f"http://127.0.0.1:{ORIGIN_PORT}/small", args.seconds, 64)}}
        for name in PROXIES:
            results[name] = bench_proxy(name, args, work, load, pin)
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "versions": versions(args.portcullis),
            "seconds": args.seconds,
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
