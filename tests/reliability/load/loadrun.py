"""The load test of issue 7: locust against the Django course-outline
example over real memcached (two instances) and S3 (moto), stratacache
(``DEMO_MODE=stratacache``) against the edx-django-utils configuration
(``DEMO_MODE=edx``) on the same servers.

Each run starts the site under gunicorn (``loadtest.Server``: one process,
8 threads, a fresh copy of the modulestore, a fresh key prefix in memcached
and S3), drives it with locust (``locustfile_outline.py``: a fixed number
of users, all started at once, no think time, the request mix of
``loadtest.make_schedule``) for a fixed time, reads the server's counters
(loader calls, memcached and storage round trips, modulestore queries) and
memcached's own ``stats`` before and after, and stops the site. The two
configurations alternate in rounds (edx, stratacache, stratacache, edx, ...), so
a noisy neighbour on the shared machine weighs on both alike.

Prints a table per run and combined per configuration with the ratios
stratacache/edx, and writes ``results.json``, ``table.txt``, per-run samples
and ``load-timeline.png`` (throughput and p99 over time) to ``--out``.

Needs ``STRATACACHE_MEMCACHED`` and ``STRATACACHE_S3_ENDPOINT`` (and the
``AWS_*`` variables): ``eval "$(bash scripts/servers.sh env)"``;
``scripts/loadtest.sh`` does all of it.

Usage: python loadrun.py [--minutes M] [--users U] [--rounds R] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLE = REPO / "examples" / "django_outline"
sys.path.insert(0, str(EXAMPLE))

import loadtest  # noqa: E402
from loadtest import LABELS, Server, get_json, percentile, summarize  # noqa: E402

COLORS = {"edx": "#d9822b", "stratacache": "#2b6cd9"}
MODES = ("edx", "stratacache")
MC_STATS = ("cmd_get", "cmd_set", "get_hits", "get_misses", "delete_hits", "delete_misses", "bytes_read")
MC_STATS += ("bytes_written", "total_connections")
BIN_S = 5.0


class LoadError(RuntimeError):
    """A step of the load test failed; the message says which and why."""


# -- servers ------------------------------------------------------------------


def memcached_servers(env: dict) -> list:
    out = []
    for spec in env.get("STRATACACHE_MEMCACHED", "").split(","):
        if spec:
            host, _, port = spec.rpartition(":")
            out.append((host, int(port)))
    return out


def memcached_stats(env: dict) -> dict:
    """The sums over every memcached server of the ``stats`` in MC_STATS."""
    total = dict.fromkeys(MC_STATS, 0)
    for host, port in memcached_servers(env):
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"stats\r\n")
            buf = b""
            while not buf.endswith(b"END\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        for line in buf.decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT" and parts[1] in total:
                total[parts[1]] += int(parts[2])
    return total


def check_env(env: dict) -> None:
    missing = [v for v in ("STRATACACHE_MEMCACHED", "STRATACACHE_S3_ENDPOINT") if not env.get(v)]
    if missing:
        raise LoadError(
            f"{' and '.join(missing)} not set: start the servers and "
            'eval "$(bash scripts/servers.sh env)" (scripts/loadtest.sh does it)'
        )
    if len(memcached_servers(env)) < 2:
        print("note: STRATACACHE_MEMCACHED names fewer than two memcached servers", file=sys.stderr)


def seed_db(out: Path, courses: int) -> Path:
    """The seeded modulestore (made once, atomically, then reused)."""
    from courses.modulestore import seed

    path = out / f"seed-{courses}.sqlite3"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".seed-{courses}-{os.getpid()}.sqlite3"
        t0 = time.monotonic()
        seed(tmp, courses)
        os.replace(tmp, path)
        print(f"seeded the modulestore ({courses + 1} courses) in {time.monotonic() - t0:.1f} s", flush=True)
    return path


# -- one run ------------------------------------------------------------------


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a run goes."""

    def __init__(self, every: float = 5.0) -> None:
        self.values: list = []
        self.points: list = []  # (seconds since the start, load avg)
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self._sample()

    def _sample(self) -> None:
        v = os.getloadavg()[0]
        self.values.append(v)
        self.points.append((round(time.monotonic() - self._t0, 1), v))

    def __enter__(self) -> LoadSampler:
        self._t0 = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def run_one(
    mode: str,
    label: str,
    *,
    seconds: float,
    users: int,
    threads: int,
    courses: int,
    seed: Path,
    out: Path,
    env: dict,
    progress_s: float = 30.0,
    min_requests: int = 0,
    max_seconds: float = 0.0,
) -> dict:
    """One run of ``mode`` for ``seconds`` with ``users`` locust users (or,
    with ``min_requests``, until it has lasted ``seconds`` and completed
    ``min_requests`` requests, within ``max_seconds``); returns its row (see
    :func:`row_of`) with the raw samples under ``"samples"``."""
    var = out / f"var-{label}"
    samples_path = out / f"samples-{label}.json"
    samples_path.unlink(missing_ok=True)
    prefix = f"load-{uuid.uuid4().hex[:8]}-{mode}"
    server_env = {**env, "DEMO_COURSES": str(courses)}
    server = Server(mode, var, seed, prefix, threads, server_env)
    mc_before = memcached_stats(env)
    locust_env = {
        **env,
        "LOAD_USERS": str(users),
        "LOAD_COURSES": str(courses),
        "LOAD_SAMPLES_OUT": str(samples_path),
        "LOAD_PROGRESS_S": str(progress_s),
        "LOAD_LABEL": label,
        "LOAD_SECONDS": str(seconds),
        "LOAD_MIN_REQUESTS": str(min_requests),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(HERE / "locustfile_outline.py"),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),  # all users at once: no ramp
        "--run-time",
        f"{int(max(seconds, max_seconds))}s",
        "--stop-timeout",
        "30",  # let in-flight requests finish
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    server.start()
    try:
        cmd += ["--host", f"http://127.0.0.1:{server.port}"]
        output: list = []
        with LoadSampler() as loadavg:
            # Progress lines as they come; the rest kept for an error message.
            proc = subprocess.Popen(
                cmd, cwd=HERE, env=locust_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("    [") and progress_s:
                    print(line, end="", flush=True)
                else:
                    output.append(line)
            proc.wait()
        if proc.returncode != 0 or not samples_path.exists():
            raise LoadError(f"locust exited with {proc.returncode}:\n{''.join(output)[-3000:]}")
        counters = get_json(server.port, "/_demo/counters")
    finally:
        server.stop()
    mc_after = memcached_stats(env)
    mc_after["total_connections"] -= len(memcached_servers(env))  # our own stats probes
    raw = json.loads(samples_path.read_text())
    errors_log = server.tail(15) if any(s[3] != 200 for s in raw) else ""
    row = row_of(
        mode, label, raw, counters, {k: mc_after[k] - mc_before[k] for k in MC_STATS}, loadavg.values
    )
    row["loadavg_series"] = loadavg.points
    row["users"] = users
    row["seconds"] = seconds
    row["key_prefix"] = prefix
    if errors_log:
        row["server_log_tail"] = errors_log
    return row


def row_of(mode: str, label: str, raw: list, counters: dict, mc: dict, loadavg: list) -> dict:
    """The figures of one run (or of several pooled: see :func:`combine`).
    ``raw``: locust samples ``(end wall time, kind, seconds, status)``."""
    if not raw:
        raise LoadError(f"{label}: no request completed")
    start = min(s[0] - s[2] for s in raw)
    end = max(s[0] for s in raw)
    samples = [(k, dt, status) for _t, k, dt, status in raw]
    row = summarize(mode, samples, end - start, counters)
    row.pop("latencies_ms")
    n = row["requests"]
    row.update(
        label=label,
        config=LABELS[mode],
        memcached_round_trips_per_request=row["cache_round_trips"] / n,
        storage_round_trips_per_request=row["storage_requests"] / n,
        db_queries_per_request=row["db_queries"] / n,
        loader_calls_per_1000=1000 * row["loader_calls"] / n,
        memcached_server=mc,
        memcached_keys_per_request=(mc["cmd_get"] + mc["cmd_set"] + mc["delete_hits"] + mc["delete_misses"])
        / n,
        memcached_kib_per_request=(mc["bytes_read"] + mc["bytes_written"]) / 1024 / n,
        memcached_connections_per_1000=1000 * mc["total_connections"] / n,
        loadavg_mean=sum(loadavg) / len(loadavg) if loadavg else float("nan"),
        loadavg_max=max(loadavg) if loadavg else float("nan"),
        by_kind={
            kind: {
                "requests": len(vs),
                "p50_ms": percentile(vs, 50) * 1000,
                "p99_ms": percentile(vs, 99) * 1000,
            }
            for kind, vs in _by_kind(samples).items()
        },
        timeline=timeline(raw, start),
        counters=counters.get("counters", {}),
    )
    row["samples"] = raw
    return row


def _by_kind(samples: list) -> dict:
    out: dict = {}
    for kind, dt, _status in samples:
        out.setdefault(kind, []).append(dt)
    return out


def timeline(raw: list, start: float) -> list:
    """``[(bin start s, req/s, p99 ms, errors), ...]`` in BIN_S bins by
    completion time (the last, partial bin left out)."""
    full = int((max(s[0] for s in raw) - start) // BIN_S) if raw else 0
    bins: dict = {}
    for t, _kind, dt, status in raw:
        bins.setdefault(int((t - start) // BIN_S), []).append((dt, status))
    out = []
    for i in range(max(full, 1)):
        items = bins.get(i, [])
        lat = [dt for dt, _ in items]
        out.append(
            (
                i * BIN_S,
                len(items) / BIN_S,
                percentile(lat, 99) * 1000 if lat else None,
                sum(1 for _, s in items if s != 200),
            )
        )
    return out


def combine(mode: str, rows: list) -> dict:
    """The figures of ``mode`` over all its runs: requests and counters
    summed, latency percentiles over all samples pooled, throughput as total
    requests over total run time."""
    mine = [r for r in rows if r["mode"] == mode]
    n = sum(r["requests"] for r in mine)
    wall = sum(r["wall_s"] for r in mine)
    lat = [s[2] for r in mine for s in r["samples"]]
    mc = {k: sum(r["memcached_server"][k] for r in mine) for k in MC_STATS}
    loads = [v for r in mine for v in (r["loadavg_mean"],)]
    total = {
        k: sum(r[k] for r in mine)
        for k in ("requests", "errors", "loader_calls", "db_queries", "cache_round_trips", "storage_requests")
    }
    return {
        "mode": mode,
        "label": "all rounds",
        "config": LABELS[mode],
        "runs": len(mine),
        **total,
        "wall_s": wall,
        "rps": n / wall,
        "p50_ms": percentile(lat, 50) * 1000,
        "p95_ms": percentile(lat, 95) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "memcached_round_trips_per_request": total["cache_round_trips"] / n,
        "storage_round_trips_per_request": total["storage_requests"] / n,
        "db_queries_per_request": total["db_queries"] / n,
        "loader_calls_per_1000": 1000 * total["loader_calls"] / n,
        "round_trips_per_request": (
            total["db_queries"] + total["cache_round_trips"] + total["storage_requests"]
        )
        / n,
        "memcached_server": mc,
        "memcached_keys_per_request": (
            mc["cmd_get"] + mc["cmd_set"] + mc["delete_hits"] + mc["delete_misses"]
        )
        / n,
        "memcached_kib_per_request": (mc["bytes_read"] + mc["bytes_written"]) / 1024 / n,
        "memcached_connections_per_1000": 1000 * mc["total_connections"] / n,
        "loadavg_mean": sum(loads) / len(loads),
        "loadavg_max": max(r["loadavg_max"] for r in mine),
        "by_kind": {
            kind: {
                "requests": len(vs),
                "p50_ms": percentile(vs, 50) * 1000,
                "p99_ms": percentile(vs, 99) * 1000,
            }
            for kind, vs in _by_kind([(s[1], s[2], s[3]) for r in mine for s in r["samples"]]).items()
        },
    }


# -- output -------------------------------------------------------------------

COLUMNS = (
    ("requests", "requests", "{:,d}"),
    ("req/s", "rps", "{:.1f}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p95 ms", "p95_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("errors", "errors", "{:d}"),
    ("loader calls", "loader_calls", "{:,d}"),
    ("loads/1k req", "loader_calls_per_1000", "{:.1f}"),
    ("mc rt/req", "memcached_round_trips_per_request", "{:.2f}"),
    ("S3 rt/req", "storage_round_trips_per_request", "{:.3f}"),
    ("db q/req", "db_queries_per_request", "{:.2f}"),
    ("mc keys/req", "memcached_keys_per_request", "{:.2f}"),
    ("mc KiB/req", "memcached_kib_per_request", "{:.1f}"),
    ("mc conn/1k", "memcached_connections_per_1000", "{:.1f}"),
    ("load avg", "loadavg_mean", "{:.2f}"),
)


def table(rows: list, combined: list) -> str:
    head = f"{'run':14} {'config':17}" + "".join(f" {name:>12}" for name, _, _ in COLUMNS)
    lines = [head, "-" * len(head)]

    def line(first: str, config: str, r: dict) -> str:
        return f"{first:14} {config:17}" + "".join(f" {fmt.format(r[key]):>12}" for _, key, fmt in COLUMNS)

    for r in rows:
        lines.append(line(r["label"], r["config"], r))
    lines.append("-" * len(head))
    for r in combined:
        lines.append(line(f"all ({r['runs']} runs)", r["config"], r))
    by_mode = {r["mode"]: r for r in combined}
    if "edx" in by_mode and "stratacache" in by_mode:
        a, b = by_mode["stratacache"], by_mode["edx"]
        cells = []
        for _, key, _fmt in COLUMNS:
            if key == "loadavg_mean" or not b[key]:
                cells.append(f" {'':>12}" if key == "loadavg_mean" else f" {'-':>12}")
            else:
                ratio = a[key] / b[key]
                cells.append(f" {ratio:>11.2f}x" if ratio >= 0.1 else f" {ratio:>11.4f}x")
        lines.append(f"{'ratio':14} {'stratacache/edx':17}" + "".join(cells))
    return "\n".join(lines)


KINDS = (
    ("outline", "outline pages"),
    ("outline-large", "the 1.3 MiB course"),
    ("enrollments", "enrollment lists"),
    ("publish", "publishes"),
)


def kind_table(combined: list) -> str:
    """Requests, p50 and p99 per kind of request, per configuration."""
    head = f"{'all rounds, per kind':22}" + "".join(
        f" {c['mode'] + ' ' + h:>19}" for c in combined for h in ("requests", "p50 ms", "p99 ms")
    )
    lines = [head, "-" * len(head)]
    for kind, name in KINDS:
        cells = []
        for c in combined:
            k = c["by_kind"].get(kind)
            if k is None:
                cells += [f" {'-':>19}"] * 3
            else:
                cells += [f" {k['requests']:>19,d}", f" {k['p50_ms']:>19.1f}", f" {k['p99_ms']:>19.1f}"]
        lines.append(f"{name:22}" + "".join(cells))
    return "\n".join(lines)


def plot(rows: list, path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(11, 9.5), sharex=True, gridspec_kw={"height_ratios": [1, 1, 0.5]}
    )
    styles = ["-", "--", ":", "-."]
    seen: dict = {}
    for r in rows:
        k = seen[r["mode"]] = seen.get(r["mode"], -1) + 1
        xs = [b[0] + BIN_S / 2 for b in r["timeline"]]
        kw = {"color": COLORS[r["mode"]], "linestyle": styles[k % len(styles)], "linewidth": 1.4}
        name = f"{r['config']} ({r['label']})"
        ax1.plot(xs, [b[1] for b in r["timeline"]], label=name, **kw)
        ax2.plot(xs, [b[2] if b[2] is not None else float("nan") for b in r["timeline"]], label=name, **kw)
        series = r.get("loadavg_series") or []
        ax3.plot([p[0] for p in series], [p[1] for p in series], label=name, **kw)
    ax1.set_ylabel(f"throughput (req/s, {BIN_S:.0f} s bins)")
    ax1.set_ylim(bottom=0)
    ax1.grid(True, alpha=0.3)
    ax1.legend(loc="lower right", fontsize=8, ncol=2)
    ax1.set_title("Throughput over time")
    ax2.set_yscale("log")
    ax2.set_ylabel(f"p99 latency (ms, {BIN_S:.0f} s bins, log)")
    ax3.set_ylabel("1-min load avg")
    ax3.set_ylim(bottom=0)
    ax3.grid(True, alpha=0.3)
    ax3.set_title("Load average of the machine (2 cores; includes this test)")
    ax3.set_xlabel("seconds since the run started")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.set_title("p99 latency over time")
    fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the campaign -------------------------------------------------------------


def order(rounds: int, modes: tuple = MODES) -> list:
    """edx, stratacache, stratacache, edx, edx, stratacache, ... (ABBA...)."""
    out = []
    for i in range(rounds):
        out += list(modes) if i % 2 == 0 else list(reversed(modes))
    return out


def campaign(
    *,
    seconds: float,
    users: int,
    rounds: int,
    out: Path,
    threads: int = 8,
    courses: int = 200,
    env: Optional[dict] = None,
    progress_s: float = 30.0,
    min_requests: int = 0,
    max_seconds: float = 0.0,
) -> dict:
    """Runs every configuration ``rounds`` times, alternating; returns
    ``{"rows": [...], "combined": [...], ...}`` (rows keep their samples)."""
    env = dict(os.environ if env is None else env)
    check_env(env)
    out.mkdir(parents=True, exist_ok=True)
    seed = seed_db(out, courses)
    from outline_site.s3 import ensure_bucket

    ensure_bucket(env)
    rows = []
    runs = order(rounds)
    counts: dict = {}
    for i, mode in enumerate(runs):
        counts[mode] = counts.get(mode, 0) + 1
        label = f"{i + 1}:{mode}"
        print(
            f"  run {i + 1}/{len(runs)}: {LABELS[mode]} (round {counts[mode]}), {seconds:.0f} s", flush=True
        )
        row = run_one(
            mode,
            label.replace(":", "-"),
            seconds=seconds,
            users=users,
            threads=threads,
            courses=courses,
            seed=seed,
            out=out,
            env=env,
            progress_s=progress_s,
            min_requests=min_requests,
            max_seconds=max_seconds,
        )
        row["label"] = label
        rows.append(row)
        print(
            f"    {row['requests']:,} requests, {row['rps']:.1f} req/s, p99 {row['p99_ms']:.1f} ms, "
            f"{row['errors']} errors, load avg {row['loadavg_mean']:.2f}",
            flush=True,
        )
    combined = [combine(m, rows) for m in MODES if any(r["mode"] == m for r in rows)]
    return {
        "users": users,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "threads": threads,
        "courses": courses,
        "tiers": loadtest.describe_tiers(env),
        "rows": rows,
        "combined": combined,
    }


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes per run (default 3)")
    parser.add_argument("--users", type=int, default=8, help="locust users, all started at once (default 8)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs per configuration, alternating (default 2)"
    )
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads (default 8)")
    parser.add_argument("--out", type=Path, default=REPO / "target" / "reliability" / "load")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    seconds = args.minutes * 60
    t0 = time.monotonic()
    print(
        f"load test: {args.users} locust users (no think time, all started at once) against the Django example "
        f"(gunicorn, 1 process, {args.threads} threads); {args.rounds} rounds of edx and stratacache alternating, "
        f"{seconds:.0f} s per run; load avg now {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(f"tiers: {loadtest.describe_tiers(dict(os.environ))}", flush=True)
    result = campaign(
        seconds=seconds,
        users=args.users,
        rounds=args.rounds,
        out=out,
        threads=args.threads,
        progress_s=args.progress,
    )
    rows, combined = result["rows"], result["combined"]
    text = table(rows, combined)
    for r in rows:
        (out / f"samples-{r['label'].replace(':', '-')}.json").write_text(json.dumps(r["samples"]))
    slim = {**result, "rows": [{k: v for k, v in r.items() if k != "samples"} for r in rows]}
    (out / "results.json").write_text(json.dumps(slim, indent=1))
    (out / "table.txt").write_text(text + "\n\n" + kind_table(combined) + "\n")
    subtitle = (
        f"{args.users} locust users, {seconds:.0f} s per run, {args.rounds} runs per configuration "
        f"(alternating), mean load avg {sum(r['loadavg_mean'] for r in rows) / len(rows):.1f}\n{result['tiers']}"
    )
    plot(rows, out / "load-timeline.png", subtitle)
    print()
    print(text)
    print()
    print(kind_table(combined))
    print(
        "\nmc rt/req: calls that reach memcached per request (stratacache: one per batch, counted by stratacache; "
        "edx: one per Django cache call). S3 rt/req: storage requests. mc keys/req and KiB/req: from "
        "memcached's own stats (keys read/written/deleted, bytes in+out); mc conn/1k: new connections to "
        "memcached per 1000 requests (its total_connections). loader calls: outlines built + "
        "course overviews loaded from the modulestore. load avg: mean 1-min load average during the run "
        "(includes this test's own processes)."
    )
    print(f"\nresults: {out / 'results.json'}\nplot: {out / 'load-timeline.png'}")
    print(f"took {time.monotonic() - t0:.0f} s")
    errors = sum(r["errors"] for r in rows)
    if errors:
        for r in rows:
            if r.get("server_log_tail"):
                print(f"\n{r['label']} server log:\n{r['server_log_tail']}", file=sys.stderr)
        print(f"\nFAILED: {errors} requests failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (LoadError, loadtest.DemoError) as exc:
        print(f"\nload test failed: {exc}", file=sys.stderr)
        sys.exit(1)
