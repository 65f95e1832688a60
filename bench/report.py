"""The results as a markdown table and a PNG chart."""

PEERS = ["nginx", "caddy", "haproxy"]
# An earlier portcullis run beside the current one (bench.py --baseline).
BASELINE = "baseline"
# As in bench.py: the full-handshake clients run at once.
HANDSHAKE_CLIENTS = 4
NAMES = {"portcullis": "portcullis", BASELINE: "portcullis before", "nginx": "nginx", "caddy": "Caddy", "haproxy": "HAProxy"}


def columns(results):
    """The proxies after portcullis: the baseline when there is one, then the peers."""
    return ([BASELINE] if BASELINE in results else []) + PEERS


def get(results, proxy, *path):
    value = results.get(proxy)
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def cell(value, base, digits):
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    if base and value is not None:
        text += f" ({value / base:.2f}×)"
    return text


def row(results, label, better, path, digits=0, scale=1.0):
    base = get(results, "portcullis", *path)
    base = base * scale if base is not None else None
    cells = [cell(base, None, digits)]
    for peer in columns(results):
        value = get(results, peer, *path)
        cells.append(cell(value * scale if value is not None else None, base, digits))
    return f"| {label} | {better} | " + " | ".join(cells) + " |"


def spread(results, label):
    """Each proxy's lowest and highest HTTP/1.1 req/s across the rounds."""
    cells = []
    for proxy in ["portcullis"] + columns(results):
        values = [v for v in (get(results, proxy, "rounds_h1_rps") or []) if v is not None]
        cells.append(f"{min(values):,.0f}–{max(values):,.0f}" if values else "–")
    return f"| {label} | | " + " | ".join(cells) + " |"


def markdown(meta, results):
    errors = sum(
        get(results, proxy, r, "errors") or 0 for proxy in ["portcullis"] + columns(results) for r in ("h1", "tls", "handshake", "resumed", "h2", "h2c", "h2_up", "h3", "upstream_tls", "large", "l4", "l4_new")
    )
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']}",
        f"- Each cell ran {meta['seconds']} s, in {meta.get('rounds', 1)} rounds that interleave the proxies; "
        f"figures are the median round's. The idle row held {meta['idle']} connections.",
        "- Proxy pinned to core 0; origin (nginx) and load generators on core 1"
        + ("." if meta["pinned"] else " (not pinned: one core only)."),
        "- Versions: " + "; ".join(f"{k} `{v}`" for k, v in meta["versions"].items()),
        f"- Failed requests across all cells: {errors}",
        "",
        "Peer cells show the value and, in brackets, the peer ÷ portcullis ratio. "
        "The second column says which direction is better."
        + (" *portcullis before* is an earlier build run in the same rounds (`BENCH_BASELINE`)." if BASELINE in results else ""),
        "",
        "| Row | Better | " + " | ".join(NAMES[p] for p in ["portcullis"] + columns(results)) + " |",
        "|---|---|" + "---|" * (1 + len(columns(results))),
        row(results, "1. HTTP/1.1 keep-alive, 64 conns: req/s", "↑", ["h1", "rps"]),
        row(results, "   p50 latency, ms", "↓", ["h1", "p50_ms"], 2),
        row(results, "   p99 latency, ms", "↓", ["h1", "p99_ms"], 2),
        spread(results, "   req/s, lowest–highest round"),
        row(results, "   proxy CPU per request, µs", "↓", ["h1", "cpu_us_per_request"], 1),
        row(results, "   of which in the kernel, µs", "↓", ["h1", "kernel_us_per_request"], 1),
        row(results, "2. HTTP/1.1 keep-alive over TLS, 64 conns: req/s", "↑", ["tls", "rps"]),
        row(results, "   p99 latency, ms", "↓", ["tls", "p99_ms"], 2),
        row(results, "   proxy CPU per request, µs", "↓", ["tls", "cpu_us_per_request"], 1),
        row(results, f"3. full TLS handshake per request, {HANDSHAKE_CLIENTS} clients: req/s", "↑", ["handshake", "rps"]),
        row(results, "   proxy CPU per handshake + request, µs", "↓", ["handshake", "cpu_us_per_request"], 1),
        row(results, "   capacity: handshakes per proxy CPU-second", "↑", ["handshake", "per_cpu_second"]),
        row(results, f"3b. resumed TLS 1.3 handshake (ticket) per request, {HANDSHAKE_CLIENTS} clients: req/s", "↑", ["resumed", "rps"]),
        row(results, "   proxy CPU per resumed handshake + request, µs", "↓", ["resumed", "cpu_us_per_request"], 1),
        row(results, "   capacity: resumed handshakes per proxy CPU-second", "↑", ["resumed", "per_cpu_second"]),
        row(results, "4. HTTP/2 over TLS, 16 conns × 16 streams: req/s", "↑", ["h2", "rps"]),
        row(results, "   proxy CPU per request, µs", "↓", ["h2", "cpu_us_per_request"], 1),
        row(results, "   h2c (cleartext), req/s", "↑", ["h2c", "rps"]),
        row(results, "   h2c proxy CPU per request, µs", "↓", ["h2c", "cpu_us_per_request"], 1),
        row(results, "4b. HTTP/2 over TLS to an h2c upstream, 16 conns × 16 streams: req/s (nginx: gRPC only)", "↑", ["h2_up", "rps"]),
        row(results, "   proxy CPU per request, µs", "↓", ["h2_up", "cpu_us_per_request"], 1),
        row(results, "5. HTTP/3, 16 conns × 16 streams: req/s (Caddy only peer)", "↑", ["h3", "rps"]),
        row(results, "   proxy CPU per request, µs", "↓", ["h3", "cpu_us_per_request"], 1),
        row(results, "6. 100 KiB responses, 16 conns: MB/s", "↑", ["large", "mb_per_s"], 1),
        row(results, "9. HTTP/1.1 keep-alive to a TLS upstream, 64 conns: req/s", "↑", ["upstream_tls", "rps"]),
        row(results, "   p99 latency, ms", "↓", ["upstream_tls", "p99_ms"], 2),
        row(results, "   proxy CPU per request, µs", "↓", ["upstream_tls", "cpu_us_per_request"], 1),
        row(results, "10. layer-4 routing by SNI, 100 KiB over 16 tunnels: MB/s (Caddy: needs a plugin)", "↑", ["l4", "mb_per_s"], 1),
        row(results, "   proxy CPU per 100 KiB response, µs", "↓", ["l4", "cpu_us_per_request"], 1),
        row(results, "   new tunnels per second (one TLS connection per request)", "↑", ["l4_new", "rps"]),
        row(results, "   proxy CPU per new tunnel, µs", "↓", ["l4_new", "cpu_us_per_request"], 1),
        row(results, "7. peak RSS, MiB", "↓", ["peak_rss_kib"], 1, 1 / 1024),
        row(results, "   RSS per idle keep-alive connection, KiB", "↓", ["idle", "kib_per_connection"], 2),
        f"| 8. origin alone (the ceiling): req/s | ↑ | {get(results, 'origin', 'h1', 'rps'):,.0f} |" + " |" * len(columns(results)),
        "",
    ]
    return "\n".join(lines)


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    proxies = ["portcullis"] + columns(results)
    panels = [
        ("HTTP/1.1 keep-alive, req/s (↑)", ["h1", "rps"]),
        ("HTTP/1.1 over TLS, req/s (↑)", ["tls", "rps"]),
        ("CPU per full TLS handshake, µs (↓)", ["handshake", "cpu_us_per_request"]),
        ("HTTP/2 over TLS 16×16, req/s (↑)", ["h2", "rps"]),
        ("h2c 16×16, req/s (↑)", ["h2c", "rps"]),
        ("100 KiB responses, MB/s (↑)", ["large", "mb_per_s"]),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (title, key) in zip(axes.flat, panels):
        values = [get(results, p, *key) or 0 for p in proxies]
        bars = ax.bar([NAMES[p] for p in proxies], values, color=["#c0392b"] + (["#e6b0aa"] if BASELINE in results else []) + ["#7f8c8d", "#95a5a6", "#bdc3c7"])
        ax.bar_label(bars, fmt="%.0f" if max(values) > 100 else "%.1f", fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle("portcullis vs nginx, Caddy and HAProxy (one core each)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
