"""The locust users of the load test (run by ``loadrun.py``, not by pytest).

Every user is a closed loop with no think time: it takes the next item of
one shared schedule (``loadtest.make_schedule`` of the Django example: a
launch burst on the large course, then outline pages by popularity with 5%
the 1.3 MiB course, enrollment lists of 50-200 courses for 20%, and a
publish of a popular course every 100 requests), sends it, and goes on. The
schedule is the same for both configurations; when it runs out it starts
over after the burst.

Every request is recorded (end time, kind, seconds, status) and written as
JSON to ``LOAD_SAMPLES_OUT`` when locust quits. Every ``LOAD_PROGRESS_S``
seconds a progress line goes to stdout.

Environment: ``LOAD_USERS`` (the burst size: the number of users),
``LOAD_COURSES`` (catalog size, default 200), ``LOAD_SCHEDULE_LEN``
(default 200,000), ``LOAD_SAMPLES_OUT``, ``LOAD_PROGRESS_S`` (default 30; 0
for none), ``LOAD_LABEL`` (prefix of the progress lines), and
``LOAD_SECONDS`` with ``LOAD_MIN_REQUESTS``: if both are set, the run stops
once it has lasted ``LOAD_SECONDS`` and completed ``LOAD_MIN_REQUESTS``
requests (locust's ``--run-time`` is then only the upper bound), so that a
short run on a crowded machine still gets past its cold start.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, events, task

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "examples" / "django_outline"))

from loadtest import make_schedule  # noqa: E402

USERS = int(os.environ.get("LOAD_USERS", "8"))
COURSES = int(os.environ.get("LOAD_COURSES", "200"))
SCHEDULE_LEN = int(os.environ.get("LOAD_SCHEDULE_LEN", "200000"))
SAMPLES_OUT = os.environ.get("LOAD_SAMPLES_OUT", "")
PROGRESS_S = float(os.environ.get("LOAD_PROGRESS_S", "30"))
LABEL = os.environ.get("LOAD_LABEL", "load")
RUN_S = float(os.environ.get("LOAD_SECONDS", "0"))
MIN_REQUESTS = int(os.environ.get("LOAD_MIN_REQUESTS", "0"))

_schedule = make_schedule(SCHEDULE_LEN, USERS, COURSES)
_items = itertools.chain(_schedule, itertools.cycle(_schedule[USERS:]))
# (end wall time, kind, seconds, status); one process, gevent: no lock needed.
_samples: list = []


class OutlineUser(FastHttpUser):
    wait_time = constant(0)
    connection_timeout = 60.0
    network_timeout = 120.0

    @task
    def next_item(self) -> None:
        kind, method, path = next(_items)
        if kind == "outline" and "BigU+Everything" in path:
            kind = "outline-large"
        if method == "POST":
            self.client.post(path, data=b"", name=kind)
        else:
            self.client.get(path, name=kind)


@events.request.add_listener
def _record(request_type, name, response_time, response_length, response=None, exception=None, **kw) -> None:
    status = getattr(response, "status_code", 0) or 0
    if exception is not None and status == 200:
        status = -1  # a failure locust saw on a 200 (e.g. a broken body)
    _samples.append((time.time(), name, response_time / 1000.0, status))


def _progress() -> None:
    started = time.time()
    seen = 0
    while True:
        gevent.sleep(PROGRESS_S)
        now = time.time()
        window = [s for s in _samples[seen:]]
        seen += len(window)
        lat = sorted(s[2] for s in window)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
        errors = sum(1 for s in _samples if s[3] != 200)
        print(
            f"    [{LABEL}] {now - started:5.0f} s: {len(_samples):7,d} requests, {errors} errors; "
            f"last {PROGRESS_S:.0f} s: {len(window) / PROGRESS_S:6.1f} req/s, p99 {p99:7.1f} ms, "
            f"load avg {os.getloadavg()[0]:.2f}",
            flush=True,
        )


def _stopper(environment) -> None:
    started = time.time()
    while time.time() - started < RUN_S or len(_samples) < MIN_REQUESTS:
        gevent.sleep(0.2)
    environment.runner.quit()


@events.test_start.add_listener
def _start(environment, **kw) -> None:
    if PROGRESS_S > 0:
        gevent.spawn(_progress)
    if RUN_S > 0 and MIN_REQUESTS > 0:
        gevent.spawn(_stopper, environment)


@events.quitting.add_listener
def _write(environment, **kw) -> None:
    if SAMPLES_OUT:
        Path(SAMPLES_OUT).write_text(json.dumps(_samples))
