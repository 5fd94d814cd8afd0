"""The demo's three-way comparison: the course-outline site under load with
no caching, with edx-django-utils' ``TieredCache``, and with stratacache.

For each mode it starts the site (gunicorn, one process, 8 threads) on
loopback with a fresh copy of the same modulestore and fresh cache keys,
replays the same request schedule with N concurrent clients, reads the
server's counters, and stops it. Then it prints a table (p50/p95/p99
latency, requests per second, loader calls, remote round trips per request)
and writes ``results.json``, ``latency.png`` and ``latency.svg`` to
``--out``.

The schedule (seeded, identical for every mode): a launch burst (every
client opens the large course at once), then outline pages of courses chosen
by popularity (5% the large one), enrollment lists of 50-200 courses (20%),
and a publish of a popular course every 100 requests.

Round trips are the calls that leave the process: modulestore queries (the
database), memcached calls (one per ``get``/``set``; one per batch for
stratacache's batched reads), storage requests (one per file).

Tiers: the embedded stand-ins unless the ``STRATACACHE_*`` variables point at
servers (``eval "$(bash scripts/servers.sh env)"``); see
``outline_site/settings.py``.

Usage: python loadtest.py [--requests N] [--concurrency C] [--modes none,edx,stratacache] [--out DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from courses.modulestore import LARGE_COURSE, catalog, seed  # noqa: E402
from outline_site.s3 import ensure_bucket  # noqa: E402

MODES = ("none", "edx", "stratacache")
LABELS = {"none": "no caching", "edx": "edx-django-utils", "stratacache": "stratacache"}
COLORS = {"none": "#999999", "edx": "#d9822b", "stratacache": "#2b6cd9"}
ENROLLMENT_SHARE = 0.20
LARGE_SHARE = 0.05
PUBLISH_EVERY = 100


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


# -- the schedule ------------------------------------------------------------


def make_schedule(n: int, concurrency: int, n_courses: int, seed_value: int = 7) -> list:
    """``[(kind, method, path), ...]``: the first ``concurrency`` are the
    launch burst, the rest the mix (see the module docs)."""
    rng = random.Random(seed_value)
    courses = catalog(n_courses)[:n_courses]
    by_popularity = courses[:]
    rng.shuffle(by_popularity)
    weights = [1.0 / (rank + 1) for rank in range(len(by_popularity))]
    popular = [*by_popularity[:4], LARGE_COURSE]
    items = [("outline", "GET", f"/courses/{LARGE_COURSE}/")] * concurrency
    publishes = 0
    while len(items) < n:
        if len(items) % PUBLISH_EVERY == PUBLISH_EVERY - 1:
            course = popular[publishes % len(popular)]
            publishes += 1
            items.append(("publish", "POST", f"/courses/{course}/publish"))
            continue
        r = rng.random()
        if r < ENROLLMENT_SHARE:
            items.append(("enrollments", "GET", f"/api/enrollments/learner{rng.randrange(1000)}"))
        elif r < ENROLLMENT_SHARE + (1 - ENROLLMENT_SHARE) * LARGE_SHARE:
            items.append(("outline", "GET", f"/courses/{LARGE_COURSE}/"))
        else:
            course = rng.choices(by_popularity, weights)[0]
            items.append(("outline", "GET", f"/courses/{course}/"))
    return items[:n]


# -- the server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The site under gunicorn (one process, ``threads`` threads) on
    loopback, in ``mode``, with its own copy of the modulestore."""

    def __init__(self, mode: str, var: Path, seed_db: Path, key_prefix: str, threads: int, env: dict) -> None:
        self.mode = mode
        self.var = var
        self.port = free_port()
        self.log_path = var / "server.log"
        var.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed_db, var / "modulestore.sqlite3")
        self.env = {
            **env,
            "DEMO_MODE": mode,
            "DEMO_VAR": str(var),
            "DEMO_KEY_PREFIX": key_prefix,
            "DJANGO_SETTINGS_MODULE": "outline_site.settings",
            "PYTHONUNBUFFERED": "1",
        }
        self.threads = threads
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "outline_site.wsgi:application",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            str(self.threads),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
            "--backlog",
            "256",
        ]
        log = open(self.log_path, "ab")  # closed when the process ends
        self.proc = subprocess.Popen(cmd, cwd=HERE, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"the {self.mode} server exited at start:\n{self.tail()}")
            try:
                if get_json(self.port, "/healthz", raw=True) == b"ok":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise DemoError(f"the {self.mode} server did not answer within 60 s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def get_json(port: int, path: str, raw: bool = False) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise DemoError(f"GET {path} answered {response.status}: {body[:300]!r}")
        return body if raw else json.loads(body)
    finally:
        conn.close()


# -- the load -----------------------------------------------------------------


def run_load(port: int, schedule: list, concurrency: int) -> tuple:
    """Replays ``schedule`` with ``concurrency`` keep-alive clients (the
    first ``concurrency`` requests start together); returns (samples, wall
    seconds, up to five error descriptions). A sample: (kind, seconds,
    status)."""
    samples: list = []
    errors: list = []
    lock = threading.Lock()
    burst = schedule[:concurrency]
    rest = iter(schedule[concurrency:])
    barrier = threading.Barrier(concurrency)

    def one(conn: http.client.HTTPConnection, item: tuple) -> http.client.HTTPConnection:
        kind, method, path = item
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            response = conn.getresponse()
            body = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            status, body = 0, repr(exc).encode()
        elapsed = time.perf_counter() - t0
        with lock:
            samples.append((kind, elapsed, status))
            if status != 200 and len(errors) < 5:
                errors.append(f"{method} {path}: {status} {body[:200]!r}")
        return conn

    def client(first: tuple) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        barrier.wait()
        conn = one(conn, first)
        while True:
            with lock:
                item = next(rest, None)
            if item is None:
                break
            conn = one(conn, item)
        conn.close()

    threads = [threading.Thread(target=client, args=(burst[i],), daemon=True) for i in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return samples, wall, errors


def percentile(values: list, p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(mode: str, samples: list, wall: float, server: dict) -> dict:
    """One row of the table, from the samples and the server's counters."""
    counts = server["counters"]
    n = len(samples)
    latencies = [s[1] for s in samples]
    db = counts.get("db_queries", 0)
    storage = counts.get("storage_calls", 0)
    if mode == "stratacache":
        # stratacache's own count of what it asked of the cache server: one
        # per batch (its memcached client sends a batch to every server at once).
        cache = sum(
            t["fetches"] + t["writes"]
            for stats in server["stratacache"].values()
            for t in stats["tiers"]
            if t["name"] != "storage"
        )
    else:
        cache = counts.get("cache_calls", 0)
    loads = counts.get("outline_loads", 0) + counts.get("overview_loads", 0)
    by_kind: dict = {}
    for kind, elapsed, _status in samples:
        by_kind.setdefault(kind, []).append(elapsed)
    return {
        "mode": mode,
        "label": LABELS[mode],
        "requests": n,
        "errors": sum(1 for s in samples if s[2] != 200),
        "wall_s": wall,
        "rps": n / wall if wall else float("nan"),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "loader_calls": loads,
        "outline_loads": counts.get("outline_loads", 0),
        "overview_loads": counts.get("overview_loads", 0),
        "db_queries": db,
        "cache_round_trips": cache,
        "storage_requests": storage,
        "round_trips_per_request": (db + cache + storage) / n if n else float("nan"),
        "latencies_ms": {k: [round(v * 1000, 3) for v in vs] for k, vs in by_kind.items()},
    }


# -- output -------------------------------------------------------------------


def table(rows: list) -> str:
    head = (
        f"{'':18} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'loader calls':>13} {'round trips/req':>16}   (db + cache + storage)"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        n = r["requests"] or 1
        lines.append(
            f"{r['label']:18} {r['rps']:7.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{r['loader_calls']:13,d} {r['round_trips_per_request']:16.1f}   "
            f"({r['db_queries'] / n:.1f} + {r['cache_round_trips'] / n:.1f} + {r['storage_requests'] / n:.2f})"
        )
    return "\n".join(lines)


def plot(rows: list, out: Path, subtitle: str) -> list:
    """Latency distributions (one panel per endpoint) and round trips per
    request; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "stratacache"
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1.2, 1.2, 0.9]})
    panels = (("outline", "Course-outline pages"), ("enrollments", "Enrollment lists (50-200 courses)"))
    for ax, (kind, title) in zip(axes[:2], panels):
        for r in rows:
            values = sorted(r["latencies_ms"].get(kind, []))
            if not values:
                continue
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ys, where="post", color=COLORS[r["mode"]], label=r["label"], linewidth=1.8)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(0, 1.01)
        ax.legend(loc="lower right")
    ax = axes[2]
    names = [r["label"] for r in rows]
    trips = [r["round_trips_per_request"] for r in rows]
    bars = ax.bar(names, trips, color=[COLORS[r["mode"]] for r in rows])
    for bar, r in zip(bars, rows):
        ax.annotate(
            f"{r['round_trips_per_request']:.1f}\n{r['loader_calls']:,} loads",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_yscale("log")
    ax.set_ylabel("remote round trips per request (log)")
    ax.set_title("Round trips per request; loader calls")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.set_ylim(top=max(trips) * 4)
    fig.suptitle(subtitle, fontsize=10)
    fig.tight_layout()
    written = []
    for ext in ("png", "svg"):
        path = out / f"latency.{ext}"
        fig.savefig(path, dpi=110, metadata={"Date": None} if ext == "svg" else {})
        written.append(path)
    plt.close(fig)
    return written


# -- main ---------------------------------------------------------------------


def describe_tiers(env: dict) -> str:
    if env.get("DEMO_SHARED_CACHE") == "redis":
        shared = f"Redis at {env.get('STRATACACHE_REDIS_URL')}"
    elif env.get("DEMO_SHARED_CACHE", "memcached") == "memcached" and env.get("STRATACACHE_MEMCACHED"):
        shared = f"memcached at {env['STRATACACHE_MEMCACHED']}"
    else:
        shared = f"memcached stand-in (in-process, {env.get('DEMO_EMBEDDED_RTT_MS', '0.25')} ms per call)"
    if env.get("STRATACACHE_S3_ENDPOINT"):
        storage = f"S3 at {env['STRATACACHE_S3_ENDPOINT']}"
    else:
        storage = f"S3 stand-in (filesystem, {env.get('DEMO_EMBEDDED_STORAGE_MS', '5')} ms per request)"
    delay = env.get("DEMO_QUERY_DELAY_MS", "1")
    return f"request → local → {shared} → {storage} → modulestore (SQLite, {delay} ms per query)"


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per mode (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--threads", type=int, default=8, help="server threads (default 8)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: none,edx,stratacache")
    parser.add_argument("--courses", type=int, default=200, help="courses in the catalog (default 200)")
    parser.add_argument("--out", type=Path, default=HERE / "var" / "demo", help="where results and plots go")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib needed)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}: use {', '.join(MODES)}")
    if args.requests < args.concurrency:
        parser.error("--requests must be at least --concurrency")

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEMO_COURSES": str(args.courses)}
    tiers = describe_tiers(env)
    run_id = uuid.uuid4().hex[:8]
    schedule = make_schedule(args.requests, args.concurrency, args.courses)
    kinds = {k: sum(1 for s in schedule if s[0] == k) for k in ("outline", "enrollments", "publish")}
    print(
        f"{args.requests} requests per mode: {kinds['outline']} outline pages (a launch burst of "
        f"{args.concurrency} on {LARGE_COURSE}, whose outline is over 1 MiB), {kinds['enrollments']} "
        f"enrollment lists, {kinds['publish']} publishes; {args.concurrency} concurrent clients; "
        f"one server process (gunicorn, {args.threads} threads)."
    )
    print(f"tiers: {tiers}\n")

    seed_db = out / f"seed-{args.courses}.sqlite3"
    if not seed_db.exists():
        t0 = time.monotonic()
        seed(seed_db, args.courses)
        print(f"seeded the modulestore ({args.courses + 1} courses) in {time.monotonic() - t0:.1f} s")
    ensure_bucket(env)

    rows = []
    failures = []
    for mode in modes:
        var = out / f"var-{mode}"
        shutil.rmtree(var, ignore_errors=True)
        server = Server(mode, var, seed_db, f"demo-{run_id}-{mode}", args.threads, env)
        try:
            server.start()
            samples, wall, errors = run_load(server.port, schedule, args.concurrency)
            counters = get_json(server.port, "/_demo/counters")
        finally:
            server.stop()
        row = summarize(mode, samples, wall, counters)
        rows.append(row)
        print(
            f"  {LABELS[mode]:18} {row['requests']} requests in {wall:5.1f} s"
            + (f", {row['errors']} FAILED" if row["errors"] else "")
        )
        if errors:
            failures.append(
                f"{LABELS[mode]}: {row['errors']} requests failed, e.g.\n    " + "\n    ".join(errors)
            )
            failures.append(f"server log ({server.log_path}):\n{server.tail(15)}")

    print()
    print(table(rows))
    print(
        "\nloader calls: outlines built + course overviews loaded from the modulestore. round trips: "
        "modulestore queries + cache-server calls (a batch is one) + storage requests."
    )
    results = {
        "run_id": run_id,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "tiers": tiers,
        "schedule": kinds,
        "rows": rows,
    }
    (out / "results.json").write_text(json.dumps(results))
    (out / "table.txt").write_text(table(rows) + "\n")
    if not args.no_plot:
        subtitle = f"{args.requests} requests per mode, {args.concurrency} clients; {tiers}"
        written = plot(rows, out, subtitle)
        print("\nplots: " + ", ".join(str(p) for p in written))
    print(f"results: {out / 'results.json'}")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        sys.exit(1)
