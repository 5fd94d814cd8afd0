"""Fault injection against the Django example (issue 7): the course-outline
site under gunicorn (``examples/django_outline/loadtest.py``'s ``Server``),
a steady load of concurrent clients, and one fault in the middle of the run:
memcached killed or frozen (``SIGSTOP``), Redis likewise, the S3 server
answering 503s, resetting connections or hanging.

Every tier is reached through a :class:`faultproxy.FaultProxy` (mode
``pass`` unless the fault is the proxy's), which counts the calls that reach
it, so the count of calls a failing tier received is measured outside the
process under test as well as by stratacache's own counters.

Each run has three phases: ``before`` (warm-up and baseline), ``fault``
and ``after`` (restart / thaw / pass again). Every ~0.5 s the run samples
the server's counters (``/_demo/counters``): loader calls, stratacache's
counters per tier (hits, misses, fetches, writes, errors, operations skipped
while cooling down). It reports:

- requests served, errors returned to clients (a non-200 or a connection
  error), loader calls, in each phase;
- the hit ratio over time (``1 - loader calls / keys asked``, keys counted
  client-side: two per outline page, one per course of an enrollment list)
  and, for stratacache, the shared tier's own hit ratio (hits / keys that
  missed the local tier), and the time from the restore until the hit ratio
  is back to 95% of its baseline (two samples in a row);
- the failing tier during the fault: operations stratacache sent to it,
  errors, skips (cool-down), and what the proxy in front of it saw, with
  the bound the cool-down rule allows (per cache: 3 failures + the
  operations already in flight + one probe per cool-down period).

Used by ``scripts/faults.sh`` (long runs, a table, JSON and plots) and by
``test_faults_django.py`` (short runs with assertions).

Usage: python faultrig.py [--scenarios a,b] [--before S --fault S --after S] [--out DIR]
(needs the servers' variables: ``eval "$(bash scripts/servers.sh env)"``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLE = REPO / "examples" / "django_outline"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(EXAMPLE))

import loadtest  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

COOLDOWN_FAILURES = 3  # the core's default CooldownPolicy (stratacache.django: COOLDOWN (3, 5.0))
COOLDOWN_SECONDS = 5.0
SAMPLE_EVERY = 0.5
RECOVERY_SHARE = 0.95


@dataclass
class Scenario:
    """One fault: ``action`` is ``kill`` / ``freeze`` (servers.sh on
    ``services``) or a proxy mode (``error``, ``reset``, ``hang``) on the
    proxies named in ``services``; ``tier`` is the stratacache tier that fails."""

    name: str
    title: str
    action: str
    services: tuple
    tier: str
    mode: str = "stratacache"
    shared: str = "memcached"
    env: dict = field(default_factory=dict)
    #: A publish (a new version: new keys, so reads reach the storage and
    #: the loader, and the loader's value is written to every tier) every N
    #: requests; 0: none.
    publish_every: int = 0
    #: Seconds after the restore at least (edx-django-utils' memcached client
    #: keeps a failed server out for 60 s).
    after_min: float = 0.0


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("mc-kill", "memcached killed (both servers), then restarted", "kill",
                 ("memcached1", "memcached2"), "memcached"),
        Scenario("mc1-kill", "memcached1 killed (1 of 2 servers), then restarted", "kill",
                 ("memcached1",), "memcached"),
        Scenario("mc-freeze", "memcached frozen (SIGSTOP, both servers), then thawed", "freeze",
                 ("memcached1", "memcached2"), "memcached"),
        Scenario("mc1-freeze", "memcached1 frozen (SIGSTOP, 1 of 2 servers), then thawed", "freeze",
                 ("memcached1",), "memcached"),
        Scenario("redis-kill", "Redis killed, then restarted", "kill", ("redis",), "redis", shared="redis"),
        Scenario("redis-freeze", "Redis frozen (SIGSTOP), then thawed", "freeze", ("redis",), "redis",
                 shared="redis"),
        Scenario("s3-503", "S3 answering 503 SlowDown", "error", ("s3",), "storage", publish_every=10),
        Scenario("s3-reset", "S3 resetting every connection", "reset", ("s3",), "storage", publish_every=10),
        Scenario("s3-hang", "S3 hanging (botocore defaults: 60 s timeouts, 4 retries)", "hang", ("s3",),
                 "storage", env={"DEMO_S3_TIMEOUT": "0"}, publish_every=10),
        Scenario("s3-hang-timeout", "S3 hanging, S3 client timeout 1 s (DEMO_S3_TIMEOUT=1)", "hang", ("s3",),
                 "storage", env={"DEMO_S3_TIMEOUT": "1"}, publish_every=10),
        Scenario("edx-mc-kill", "edx-django-utils: memcached killed (both servers), then restarted", "kill",
                 ("memcached1", "memcached2"), "memcached", mode="edx", after_min=75.0),
    )
}  # fmt: skip


# -- the rig: proxies in front of the servers ------------------------------------


class Rig:
    """Proxies in front of the servers named by the ``STRATACACHE_*``
    variables, a seeded modulestore, and the controls of the faults."""

    def __init__(self, out: Path, *, courses: int = 200, threads: int = 8, concurrency: int = 8) -> None:
        self.out = out
        self.courses = courses
        self.threads = threads
        self.concurrency = concurrency
        env = os.environ
        missing = [
            v
            for v in ("STRATACACHE_MEMCACHED", "STRATACACHE_REDIS_URL", "STRATACACHE_S3_ENDPOINT")
            if not env.get(v)
        ]
        if missing:
            raise RuntimeError(f'set {", ".join(missing)}: eval "$(bash scripts/servers.sh env)"')
        mc = env["STRATACACHE_MEMCACHED"].split(",")
        redis_hostport = env["STRATACACHE_REDIS_URL"].split("//", 1)[1].split("/", 1)[0]
        s3_hostport = env["STRATACACHE_S3_ENDPOINT"].split("//", 1)[1].rstrip("/")
        self.upstreams = {
            "memcached1": mc[0],
            "memcached2": mc[1] if len(mc) > 1 else mc[0],
            "redis": redis_hostport,
            "s3": s3_hostport,
        }
        self.proxies: dict = {}
        self.seed_db = out / f"seed-{courses}.sqlite3"

    def start(self) -> Rig:
        self.out.mkdir(parents=True, exist_ok=True)
        for name, hostport in self.upstreams.items():
            host, _, port = hostport.rpartition(":")
            self.proxies[name] = FaultProxy((host, int(port)), http=(name == "s3"), name=name).start()
        if not self.seed_db.exists():
            loadtest.seed(self.seed_db, self.courses)
        loadtest.ensure_bucket(self.server_env())
        return self

    def stop(self) -> None:
        for p in self.proxies.values():
            p.stop()

    def server_env(self, shared: str = "memcached", extra: Optional[dict] = None) -> dict:
        p = self.proxies
        env = {
            **os.environ,
            "STRATACACHE_MEMCACHED": f"{p['memcached1'].address},{p['memcached2'].address}",
            "STRATACACHE_REDIS_URL": f"redis://{p['redis'].address}/0",
            "STRATACACHE_S3_ENDPOINT": f"http://{p['s3'].address}",
            "DEMO_COURSES": str(self.courses),
            # A short-lived local tier, so the shared tier keeps working (many
            # processes' local tiers miss in a real deployment).
            "DEMO_LOCAL_TTL": "1",
        }
        if shared == "redis":
            env["DEMO_SHARED_CACHE"] = "redis"
        else:
            env.pop("DEMO_SHARED_CACHE", None)
        env.update(extra or {})
        return env

    # faults ---------------------------------------------------------------------

    def servers(self, verb: str, services: tuple) -> None:
        subprocess.run(
            ["bash", str(REPO / "scripts" / "servers.sh"), verb, *services],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def signal(self, services: tuple, sig: int) -> None:
        """Sends ``sig`` to the servers (pids from servers.sh's pid files):
        at once, where ``servers.sh`` would first start a shell."""
        base = os.environ.get("STRATACACHE_PORT_BASE", "21210")
        folder = Path(os.environ.get("STRATACACHE_SERVERS_DIR") or REPO / "target" / "servers" / base)
        for s in services:
            os.kill(int((folder / f"{s}.pid").read_text().strip()), sig)

    def kill(self, services: tuple) -> None:
        """SIGKILL (a crash: no goodbye to the clients), then waits until the
        port is free; ``servers.sh start`` starts it again."""
        self.signal(services, signal.SIGKILL)
        for s in services:
            host, _, port = self.upstreams[s].rpartition(":")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((host, int(port)), timeout=0.2).close()
                except OSError:
                    break
                time.sleep(0.02)

    def inject(self, sc: Scenario) -> None:
        if sc.action == "kill":
            self.kill(sc.services)
        elif sc.action == "freeze":
            self.signal(sc.services, signal.SIGSTOP)
        else:
            for s in sc.services:
                self.proxies[s].set_mode(sc.action)

    def restore(self, sc: Scenario) -> None:
        if sc.action == "kill":
            self.servers("start", sc.services)
        elif sc.action == "freeze":
            self.signal(sc.services, signal.SIGCONT)
        else:
            for s in sc.services:
                self.proxies[s].set_mode("pass")

    def proxy_counts(self, services: tuple) -> dict:
        total: dict = {}
        for s in services:
            for k, v in self.proxies[s].counts().items():
                total[k] = total.get(k, 0) + v
        return total


# -- the load ------------------------------------------------------------------------


def make_items(n_courses: int, concurrency: int, publish_every: int = 0) -> list:
    """The load's requests: outline pages and enrollment lists, as in the
    demo's schedule, without its publishes (a publish changes keys, which
    blurs the hit ratio), or with one every ``publish_every`` requests (the
    S3 scenarios: the storage tier is read and written only for new keys)."""
    items = [
        it for it in loadtest.make_schedule(4000, concurrency, n_courses)[concurrency:] if it[0] != "publish"
    ]
    if publish_every:
        popular = [it[2] for it in items if it[0] == "outline"][:20]
        out = []
        for i, it in enumerate(items):
            if i % publish_every == publish_every - 1:
                out.append(("publish", "POST", popular[(i // publish_every) % len(popular)] + "publish"))
            out.append(it)
        items = out
    return items


class Load:
    """``concurrency`` keep-alive clients replaying ``items`` in a loop
    until stopped. A sample: (start, end, seconds, status, kind, keys) with
    times relative to ``t0``; status 0 is a connection error or timeout."""

    def __init__(self, port: int, items: list, concurrency: int, t0: float, timeout: float = 120.0) -> None:
        self.port = port
        self.items = items
        self.concurrency = concurrency
        self.t0 = t0
        self.timeout = timeout
        self.samples: list = []
        self.errors: list = []
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list = []

    def start(self) -> None:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._client, name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        while not self._stop.is_set():
            with self._lock:
                kind, method, path = self.items[self._next % len(self.items)]
                self._next += 1
            start = time.monotonic()
            keys = 0
            try:
                conn.request(method, path)
                response = conn.getresponse()
                body = response.read()
                status = response.status
                if status == 200:
                    keys = {"enrollments": 0, "outline": 2}.get(kind, 0)
                    if kind == "enrollments":
                        keys = json.loads(body)["count"]
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                status, body = 0, repr(exc).encode()
            end = time.monotonic()
            with self._lock:
                self.samples.append((start - self.t0, end - self.t0, end - start, status, kind, keys))
                if status != 200 and len(self.errors) < 5:
                    self.errors.append(f"{method} {path}: {status} {body[:200]!r}")
        conn.close()


def warm(port: int, n_courses: int, clients: int = 4) -> None:
    """Every course's outline page once (its outline and overview in every
    tier), with a few clients, before the clock starts."""
    paths = [f"/courses/{cid}/" for cid in loadtest.catalog(n_courses)]
    lock = threading.Lock()
    failures: list = []

    def client() -> None:
        while True:
            with lock:
                if not paths:
                    return
                path = paths.pop()
            try:
                loadtest.get_json(port, path, raw=True)
            except (OSError, loadtest.DemoError) as exc:
                failures.append(f"{path}: {exc}")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"warming the site failed: {failures[:3]}")


class Sampler:
    """The server's counters every ``SAMPLE_EVERY`` seconds: (t, counters)."""

    def __init__(self, port: int, t0: float) -> None:
        self.port = port
        self.t0 = t0
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def snap(self, timeout: float = 30.0) -> Optional[dict]:
        """The counters now, or None if the server does not answer within
        ``timeout`` (every thread stuck on a hung tier)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/_demo/counters")
            response = conn.getresponse()
            body = response.read()
            return json.loads(body) if response.status == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            data = self.snap()
            if data is not None:
                self.samples.append((time.monotonic() - self.t0, data))
            next_at += SAMPLE_EVERY
            self._stop.wait(max(0.0, next_at - time.monotonic()))


# -- one run -------------------------------------------------------------------------


def _loads(snapshot: dict) -> int:
    c = snapshot["counters"]
    return c.get("outline_loads", 0) + c.get("overview_loads", 0)


def _tier_totals(snapshot: dict, tier: str) -> dict:
    """The named tier's counters, summed over the site's caches, and per cache."""
    total: dict = {}
    per_cache: dict = {}
    for cache, stats in (snapshot.get("stratacache") or {}).items():
        for t in stats["tiers"]:
            if t["name"] == tier:
                per_cache[cache] = {k: v for k, v in t.items() if isinstance(v, int)}
                for k, v in per_cache[cache].items():
                    total[k] = total.get(k, 0) + v
    return {"total": total, "per_cache": per_cache}


def _reads(snapshot: dict) -> dict:
    total: dict = {}
    for stats in (snapshot.get("stratacache") or {}).values():
        for k, v in stats["reads"].items():
            total[k] = total.get(k, 0) + v
    return total


def _diff(a: dict, b: dict) -> dict:
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}


def _at(samples: list, t: float) -> dict:
    """The last counter sample taken at or before ``t`` (or the first)."""
    best = samples[0][1]
    for ts, data in samples:
        if ts <= t:
            best = data
        else:
            break
    return best


def run(
    rig: Rig,
    sc: Scenario,
    *,
    warmup: float = 3.0,
    before: float = 10.0,
    fault: float = 15.0,
    after: float = 15.0,
    progress: Callable[[str], None] = lambda s: None,
) -> dict:
    """Runs ``sc`` and returns its results (see the module docs)."""
    run_id = uuid.uuid4().hex[:8]
    after = max(after, sc.after_min)
    var = rig.out / f"var-{sc.name}"
    shutil.rmtree(var, ignore_errors=True)
    env = rig.server_env(sc.shared, sc.env)
    server = loadtest.Server(sc.mode, var, rig.seed_db, f"faults-{run_id}-{sc.name}", rig.threads, env)
    server.start()
    items = make_items(rig.courses, rig.concurrency, sc.publish_every)
    restored = False
    try:
        warm(server.port, rig.courses)
        progress(f"{sc.name}: warm (every outline page once)")
        t0 = time.monotonic()
        sampler = Sampler(server.port, t0)
        load = Load(server.port, items, rig.concurrency, t0)
        sampler.start()
        load.start()
        progress(f"{sc.name}: load running ({rig.concurrency} clients), fault at {warmup + before:.0f} s")
        time.sleep(max(0.0, t0 + warmup + before - time.monotonic()))
        snap_inject = sampler.snap(timeout=2.0)
        proxy_before = rig.proxy_counts(sc.services)
        t_inject = time.monotonic() - t0
        rig.inject(sc)
        progress(f"{sc.name}: fault injected ({sc.action} {' '.join(sc.services)}) for {fault:.0f} s")
        time.sleep(max(0.0, t0 + t_inject + fault - time.monotonic()))
        snap_restore = sampler.snap(timeout=1.0)  # else the last sample
        proxy_fault = rig.proxy_counts(sc.services)
        t_restore = time.monotonic() - t0
        rig.restore(sc)
        restored = True
        progress(f"{sc.name}: restored; running {after:.0f} s more")
        time.sleep(max(0.0, t0 + t_restore + after - time.monotonic()))
        load.stop()
        sampler.stop()
        t_end = time.monotonic() - t0
        final = sampler.snap()
        if final is not None:
            sampler.samples.append((t_end, final))
    finally:
        if not restored:
            rig.restore(sc)
        server.stop()
    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    return analyse(
        sc,
        load,
        sampler.samples,
        t_warm=warmup,
        t_inject=t_inject,
        t_restore=t_restore,
        t_end=t_end,
        proxy=_diff(proxy_before, proxy_fault),
        window=(snap_inject, snap_restore),
        threads=rig.threads,
        server_log_errors=log.count("Traceback"),
    )


def analyse(
    sc: Scenario,
    load: Load,
    counter_samples: list,
    *,
    t_warm: float,
    t_inject: float,
    t_restore: float,
    t_end: float,
    proxy: dict,
    window: tuple = (None, None),
    threads: int,
    server_log_errors: int,
) -> dict:
    samples = sorted(load.samples)
    phases = {"before": (0.0, t_inject), "fault": (t_inject, t_restore), "after": (t_restore, t_end + 1e9)}

    def phase_of(start: float) -> str:
        return next(p for p, (a, b) in phases.items() if a <= start < b)

    by_phase = {p: {"requests": 0, "served": 0, "errors": 0, "latencies": []} for p in phases}
    for start, _end, secs, status, _kind, _keys in samples:
        row = by_phase[phase_of(start)]
        row["requests"] += 1
        row["served" if status == 200 else "errors"] += 1
        row["latencies"].append(secs)
    for row in by_phase.values():
        lat = row.pop("latencies")
        row["p50_ms"] = round(loadtest.percentile(lat, 50) * 1000, 1) if lat else None
        row["p99_ms"] = round(loadtest.percentile(lat, 99) * 1000, 1) if lat else None
        row["max_ms"] = round(max(lat) * 1000, 1) if lat else None

    # Time series, one point per counter sample.
    series = []
    for (ta, a), (tb, b) in zip(counter_samples, counter_samples[1:]):
        in_window = [s for s in samples if ta <= s[1] < tb]
        keys = sum(s[5] for s in in_window)
        loads = _loads(b) - _loads(a)
        point = {
            "t": round(tb, 3),
            "requests": len(in_window),
            "errors": sum(1 for s in in_window if s[3] != 200),
            "keys": keys,
            "loads": loads,
            "hit_ratio": (min(1.0, max(0.0, 1 - loads / keys)) if keys else None),
            "p50_ms": (
                round(loadtest.percentile([s[2] for s in in_window], 50) * 1000, 2) if in_window else None
            ),
            "max_ms": round(max(s[2] for s in in_window) * 1000, 2) if in_window else None,
        }
        ra, rb = _reads(a), _reads(b)
        if ra:
            rd = _diff(ra, rb)
            ta_, tb_ = _tier_totals(a, sc.tier)["total"], _tier_totals(b, sc.tier)["total"]
            td = _diff(ta_, tb_)
            past_local = rd.get("keys", 0) - rd.get("request_hits", 0) - rd.get("local_hits", 0)
            point["tier_hit_ratio"] = td.get("hits", 0) / past_local if past_local > 0 else None
            point["tier_hits"] = td.get("hits", 0)
            point["past_local"] = max(0, past_local)
            point["tier_ops"] = td.get("fetches", 0) + td.get("writes", 0)
            point["tier_errors"] = td.get("errors", 0)
            point["tier_skipped"] = td.get("skipped_cooling_down", 0)
        series.append(point)

    def mean(xs: list) -> Optional[float]:
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    # Baseline: the before phase after the warm-up.
    base_pts = [p for p in series if t_warm <= p["t"] <= t_inject]
    keys = sum(p["keys"] for p in base_pts)
    baseline = max(0.0, 1 - sum(p["loads"] for p in base_pts) / keys) if keys else None
    past = sum(p.get("past_local", 0) for p in base_pts)
    tier_baseline = sum(p.get("tier_hits", 0) for p in base_pts) / past if past else None
    if sc.tier == "storage":  # read only for the keys memcached misses: no meaningful share
        tier_baseline = None
    fault_pts = [p for p in series if t_inject < p["t"] <= t_restore]

    def recovery(num: Callable, den: Callable, base: Optional[float]) -> Optional[float]:
        """Seconds from the restore to the end of the first 1 s window (two
        samples) after it whose ratio is back to 95% of ``base``."""
        if base is None:
            return None
        after = [p for p in series if p["t"] > t_restore]
        for p, q in zip(after, after[1:]):
            d = den(p) + den(q)
            if d > 0 and (num(p) + num(q)) / d >= RECOVERY_SHARE * base:
                return round(q["t"] - t_restore, 2)
        return None

    # The failing tier during the fault window (stratacache counters).
    # Counters taken just before the fault and just before the restore.
    a = window[0] or _at(counter_samples, t_inject)
    b = window[1] or _at(counter_samples, t_restore + 0.01)
    tier_a, tier_b = _tier_totals(a, sc.tier), _tier_totals(b, sc.tier)
    per_cache = {
        cache: _diff(tier_a["per_cache"].get(cache, {}), counts)
        for cache, counts in tier_b["per_cache"].items()
    }
    fault_s = t_restore - t_inject
    probes = math.ceil(fault_s / COOLDOWN_SECONDS)
    # Per cache: the failures that trip it, the operations already in flight
    # then (one per server thread), one probe per cool-down period.
    bound_per_cache = COOLDOWN_FAILURES + threads + probes
    ops = {c: d.get("fetches", 0) + d.get("writes", 0) for c, d in per_cache.items()}
    cooldown = {
        "window_s": round(fault_s, 2),
        "ops_sent": sum(ops.values()),
        "ops_per_cache": ops,
        "errors": sum(d.get("errors", 0) for d in per_cache.values()),
        "skipped": sum(d.get("skipped_cooling_down", 0) for d in per_cache.values()),
        "bound_per_cache": bound_per_cache,
        "bound": bound_per_cache * len(per_cache),
        "within_bound": all(v <= bound_per_cache for v in ops.values()) if ops else None,
        "proxy_requests": proxy.get("requests", 0),
        "proxy_connections": proxy.get("connections", 0),
        "proxy": proxy,
    }
    loads_total = _loads(counter_samples[-1][1]) - _loads(counter_samples[0][1]) if counter_samples else None
    return {
        "scenario": sc.name,
        "title": sc.title,
        "mode": sc.mode,
        "tier": sc.tier,
        "t_inject": round(t_inject, 3),
        "t_restore": round(t_restore, 3),
        "t_end": round(t_end, 3),
        "requests": len(samples),
        "served": sum(1 for s in samples if s[3] == 200),
        "errors": sum(1 for s in samples if s[3] != 200),
        "error_examples": load.errors,
        "phases": by_phase,
        "loader_calls": loads_total,
        "loader_calls_fault": sum(p["loads"] for p in fault_pts),
        "baseline_hit_ratio": baseline,
        "fault_hit_ratio": (
            1 - sum(p["loads"] for p in fault_pts) / max(1, sum(p["keys"] for p in fault_pts))
            if fault_pts
            else None
        ),
        "recovery_s": recovery(lambda p: p["keys"] - p["loads"], lambda p: p["keys"], baseline),
        "tier_baseline_hit_ratio": tier_baseline,
        "tier_recovery_s": recovery(
            lambda p: p.get("tier_hits", 0), lambda p: p.get("past_local", 0), tier_baseline
        ),
        "cooldown": cooldown,
        "server_log_tracebacks": server_log_errors,
        "series": series,
    }


# -- output --------------------------------------------------------------------------


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec)


def table(results: list) -> str:
    head = (
        f"{'scenario':17} {'served':>7} {'errors':>6} {'loads':>6} {'p99 ms':>8} {'max ms':>8} "
        f"{'hit base':>8} {'hit fault':>9} {'recov s':>7} {'tier recov':>10} "
        f"{'ops->tier':>9} {'bound':>6} {'skipped':>7} {'proxy req':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        c = r["cooldown"]
        f = r["phases"]["fault"]
        lines.append(
            f"{r['scenario']:17} {r['served']:7d} {r['errors']:6d} {_fmt(r['loader_calls'], 'd'):>6} "
            f"{_fmt(f['p99_ms'], '.0f'):>8} {_fmt(f['max_ms'], '.0f'):>8} "
            f"{_fmt(r['baseline_hit_ratio'], '.3f'):>8} {_fmt(r['fault_hit_ratio'], '.3f'):>9} "
            f"{_fmt(r['recovery_s'], '.1f'):>7} {_fmt(r['tier_recovery_s'], '.1f'):>10} "
            f"{(c['ops_sent'] if r['mode'] == 'stratacache' else '-'):>9} "
            f"{(c['bound'] if r['mode'] == 'stratacache' else '-'):>6} "
            f"{(c['skipped'] if r['mode'] == 'stratacache' else '-'):>7} {c['proxy_requests']:9d}"
        )
    return "\n".join(lines)


LEGEND = """\
served/errors: requests answered 200 / not (a 5xx or a connection error) over the whole run.
loads: loader calls (outlines built + overviews loaded) over the whole run.
p99 ms, max ms: latency of the requests started during the fault.
hit base / hit fault: 1 - loader calls / keys asked, before the fault (baseline) and during it.
recov s: seconds from the restart/thaw until the hit ratio is back to 95% of the baseline (2 samples
  of 0.5 s in a row); tier recov: the same for the failing tier's own hit ratio (hits / keys that
  missed the local tier).
ops->tier: operations stratacache sent to the failing tier during the fault (fetches + writes, both
  caches); bound: what the cool-down rule allows (per cache: 3 failures + 8 in flight + one probe per
  5 s); skipped: operations skipped while cooling down; proxy req: requests the proxy in front of the
  failing server(s) received during the fault."""


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = r["series"]
    t = [p["t"] for p in s]

    def rolling(num: Callable, den: Callable) -> list:
        """The ratio over 1 s (this sample and the one before)."""
        out = []
        for i in range(len(s)):
            pts = s[max(0, i - 1) : i + 1]
            d = sum(den(p) for p in pts)
            out.append(sum(num(p) for p in pts) / d if d > 0 else None)
        return out

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for ax in (ax1, ax2):
        ax.axvspan(r["t_inject"], r["t_restore"], color="#d62728", alpha=0.12, label="fault")
        ax.grid(True, alpha=0.3)
    hit = rolling(lambda p: max(0, p["keys"] - p["loads"]), lambda p: p["keys"])
    ax1.plot(t, hit, color="#2b6cd9", label="hit ratio (1 - loads / keys, over 1 s)")
    # (The storage tier is read only for keys memcached misses: its share of
    # the keys past the local tier says nothing, so it is not drawn.)
    if r["tier"] != "storage" and any(p.get("tier_hit_ratio") is not None for p in s):
        ax1.plot(
            t,
            rolling(lambda p: p.get("tier_hits", 0), lambda p: p.get("past_local", 0)),
            color="#2ca02c",
            linestyle="--",
            label=f"{r['tier']} tier hit ratio (of keys past the local tier, over 1 s)",
        )
    ax1.set_ylim(-0.02, 1.05)
    ax1.set_ylabel("hit ratio")
    ax1.legend(loc="lower left", fontsize=8)
    ax2.plot(t, [p["p50_ms"] for p in s], color="#555555", label="p50 latency")
    ax2.plot(t, [p["max_ms"] for p in s], color="#d9822b", label="max latency")
    errs = [(p["t"], p["errors"]) for p in s if p["errors"]]
    if errs:
        ax2.scatter([e[0] for e in errs], [1.0] * len(errs), marker="x", color="red", label="client errors")
    for p, q in zip(s, s[1:]):
        if q["t"] - p["t"] > 2.5:
            ax2.annotate(
                f"no counters for {q['t'] - p['t']:.0f} s: the site answered nothing",
                ((p["t"] + q["t"]) / 2, 30),
                ha="center",
                fontsize=8,
                color="#d62728",
            )
    ax2.set_yscale("log")
    ax2.set_ylabel("latency per 0.5 s (ms, log)")
    ax2.set_xlabel("seconds")
    ax2.legend(loc="upper left", fontsize=8)
    c = r["cooldown"]
    ax1.set_title(
        f"{r['title']} [{r['mode']}]\n{r['served']} served, {r['errors']} errors, "
        f"{r['loader_calls']} loader calls; "
        + (f"{c['ops_sent']} ops sent to the failing tier, " if r["mode"] == "stratacache" else "")
        + f"proxy saw {c['proxy_requests']} requests during the fault",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="Fault injection against the Django example.")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated, of: " + ", ".join(SCENARIOS)
    )
    parser.add_argument(
        "--warmup", type=float, default=8.0, help="seconds of warm-up, not in the baseline (default 8)"
    )
    parser.add_argument(
        "--before", type=float, default=10.0, help="seconds of baseline before the fault (default 10)"
    )
    parser.add_argument("--fault", type=float, default=15.0, help="seconds of fault (default 15)")
    parser.add_argument("--after", type=float, default=15.0, help="seconds after the restore (default 15)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "target" / "reliability" / "faults")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw the plots from the JSON files in --out"
    )
    args = parser.parse_args(argv)
    if args.replot:
        for path in sorted(args.out.glob("*.json")):
            r = json.loads(path.read_text())
            if "series" in r:
                plot(r, path.with_suffix(".png"))
        return 0
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    out = args.out.resolve()
    rig = Rig(out, concurrency=args.concurrency).start()
    results = []
    started = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {msg}", flush=True)

    try:
        for name in names:
            r = run(
                rig,
                SCENARIOS[name],
                warmup=args.warmup,
                before=args.before,
                fault=args.fault,
                after=args.after,
                progress=progress,
            )
            plot(r, out / f"{name}.png")
            (out / f"{name}.json").write_text(json.dumps(r, indent=1))
            c = r["cooldown"]
            progress(
                f"{name}: {r['served']} served, {r['errors']} errors, {r['loader_calls']} loader calls, "
                f"recovery {_fmt(r['recovery_s'])} s; {c['ops_sent']} ops to the failing tier "
                f"(bound {c['bound']}), {c['skipped']} skipped, proxy saw {c['proxy_requests']} requests"
            )
            if r["error_examples"]:
                progress("  e.g. " + "; ".join(r["error_examples"][:2]))
            results.append(r)
    finally:
        rig.stop()
    load = os.getloadavg()
    summary = {
        "loadavg": load,
        "warmup_s": args.warmup,
        "before_s": args.before,
        "fault_s": args.fault,
        "after_s": args.after,
        "concurrency": args.concurrency,
        "results": [{k: v for k, v in r.items() if k != "series"} for r in results],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    text = table(results)
    (out / "table.txt").write_text(text + "\n")
    print()
    print(text)
    print()
    print(LEGEND)
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; results and plots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
