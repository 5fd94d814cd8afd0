"""Request-cache soak (issue 7, "Soak and memory"): stratacache.RequestCache
across threads and asyncio tasks at once.

``--threads`` OS threads each serve requests one after another, and one more
thread runs an event loop with ``--tasks`` concurrent asyncio tasks serving
requests, until ``--requests`` requests are done in all. Each request runs in
its own ``request_scope()`` (what the middleware does) and:

* writes private values (its id, a fresh object, a ~1 KiB string) under the
  same keys every other request uses, in two namespaces;
* yields between its steps (``time.sleep(0)`` in threads, ``await
  asyncio.sleep(0)`` in tasks) so other requests run in between, then checks
  that every read returns its own values (never another request's);
* checks that a key only another request wrote is not visible;
* after the scope ends, checks that the scope is gone, that the cache is
  empty again in that context, and (weakref) that its private object was
  freed: nothing survives the end of a request.

RSS (VmRSS) is sampled every ``--sample`` requests. Prints one JSON object
(requests, cross-request sightings, survivors, RSS samples and growth after
warm-up: the first fifth of the requests).

Usage: python soak_request.py [--requests N] [--threads T] [--tasks K] [--progress]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import threading
import time
import weakref

from soak_rss import rss_bytes

from stratacache import MISSING, RequestCache, current_scope, request_scope

CACHE_A = RequestCache("soak-a")
CACHE_B = RequestCache("soak-b")


class Private:
    """A value only one request holds (weakref-able)."""

    __slots__ = ("__weakref__", "rid")

    def __init__(self, rid: int) -> None:
        self.rid = rid


class Soak:
    def __init__(self, requests: int, sample: int, progress: bool) -> None:
        self.requests = requests
        self.sample = sample
        self.progress = progress
        self.lock = threading.Lock()
        self.next_id = 0
        self.done = 0
        self.sightings: list[str] = []  # another request's value seen
        self.survivors: list[str] = []  # something outlived its request
        self.samples: list[list[int]] = []
        self.t0 = time.perf_counter()

    def take(self) -> int | None:
        with self.lock:
            if self.next_id >= self.requests:
                return None
            self.next_id += 1
            return self.next_id - 1

    def finish(self, rid: int, ref: weakref.ref) -> None:
        # The request's private object was held by its scope alone: once the
        # scope has ended it must be gone (the scope keeps no cycles, so no
        # gc is needed). A weakref that still resolves is a value that
        # outlived its request.
        if ref() is not None:
            self.outlived(f"request {rid}: its private value is alive after its end")
        with self.lock:
            self.done += 1
            if self.done % self.sample == 0:
                self.samples.append([self.done, rss_bytes()])
                if self.progress and self.done % max(self.requests // 20, 1) < self.sample:
                    print(
                        f"  [request-cache] {self.done:>10,} requests  rss {self.samples[-1][1] / 2**20:6.1f} MiB"
                        f"  sightings {len(self.sightings)}  survivors {len(self.survivors)}",
                        file=sys.stderr,
                        flush=True,
                    )

    def saw(self, what: str) -> None:
        with self.lock:
            if len(self.sightings) < 100:
                self.sightings.append(what)

    def outlived(self, what: str) -> None:
        with self.lock:
            if len(self.survivors) < 100:
                self.survivors.append(what)

    # One request, in steps; `pause` yields to other threads/tasks.
    def begin(self, rid: int) -> weakref.ref:
        private = Private(rid)
        CACHE_A.set("user", rid)
        CACHE_A.set("private", private)
        CACHE_B.set("blob", f"{rid}:" + "x" * 1024)
        CACHE_A.set(f"only:{rid}", rid)
        return weakref.ref(private)

    def check(self, rid: int, ref: weakref.ref, step: int) -> None:
        if (got := CACHE_A.get("user")) != rid:
            self.saw(f"request {rid} step {step}: user is {got!r}")
        if CACHE_A.get("private") is not ref():
            self.saw(f"request {rid} step {step}: private object is another's")
        blob = CACHE_B.get("blob")
        if blob is MISSING or not blob.startswith(f"{rid}:"):
            self.saw(f"request {rid} step {step}: blob is {str(blob)[:20]!r}")
        other = rid - 1
        if other >= 0 and CACHE_A.get(f"only:{other}") is not MISSING:
            self.saw(f"request {rid} step {step}: sees only:{other}")
        CACHE_A.set("user", rid)

    def after(self, rid: int) -> None:
        if current_scope() is not None:
            self.outlived(f"request {rid}: a scope is still current after its end")
        for cache, key in (
            (CACHE_A, "user"),
            (CACHE_A, "private"),
            (CACHE_B, "blob"),
            (CACHE_A, f"only:{rid}"),
        ):
            if cache.get(key) is not MISSING:
                self.outlived(f"request {rid}: {cache.namespace}/{key} visible after its end")

    def thread_worker(self) -> None:
        while (rid := self.take()) is not None:
            with request_scope() as scope:
                ref = self.begin(rid)
                for step in range(3):
                    time.sleep(0)
                    self.check(rid, ref, step)
            if len(scope) != 0:
                self.outlived(f"request {rid}: its scope holds {len(scope)} entries after its end")
            self.after(rid)
            self.finish(rid, ref)

    async def task_worker(self) -> None:
        while (rid := self.take()) is not None:
            with request_scope():
                ref = self.begin(rid)
                for step in range(3):
                    await asyncio.sleep(0)
                    self.check(rid, ref, step)
            self.after(rid)
            self.finish(rid, ref)

    def loop_thread(self, tasks: int) -> None:
        async def main() -> None:
            await asyncio.gather(*(self.task_worker() for _ in range(tasks)))

        asyncio.run(main())


def run(requests: int, threads: int, tasks: int, sample: int, progress: bool = False) -> dict:
    gc.collect()
    soak = Soak(requests, sample, progress)
    soak.samples.append([0, rss_bytes()])
    workers = [threading.Thread(target=soak.thread_worker) for _ in range(threads)]
    workers.append(threading.Thread(target=soak.loop_thread, args=(tasks,)))
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - soak.t0
    if current_scope() is not None:
        soak.outlived("the main thread has a scope after the run")
    warm_at = requests // 5
    warm = next(s for s in soak.samples if s[0] >= warm_at)
    after = [s[1] for s in soak.samples if s[0] >= warm_at]
    return {
        "host": "python",
        "contender": "request-cache",
        "requests": soak.done,
        "threads": threads,
        "tasks": tasks,
        "seconds": seconds,
        "requests_per_s": soak.done / seconds,
        "sightings": len(soak.sightings),
        "sighting_examples": soak.sightings[:5],
        "survivors": len(soak.survivors),
        "survivor_examples": soak.survivors[:5],
        "warm_rss": warm[1],
        "peak_rss": max(s[1] for s in soak.samples),
        "final_rss": soak.samples[-1][1],
        "growth_after_warm": soak.samples[-1][1] - warm[1],
        "peak_growth_after_warm": max(after) - warm[1],
        "samples": soak.samples,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument(
        "--sample", type=int, default=0, help="requests between RSS samples (default requests/200)"
    )
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    sample = args.sample or max(args.requests // 200, 1)
    print(json.dumps(run(args.requests, args.threads, args.tasks, sample, args.progress)))


if __name__ == "__main__":
    main()
