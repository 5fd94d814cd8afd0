"""Fixtures of the example's tests: Django configured for the example over the
real memcached and S3 that ``scripts/servers.sh`` starts
(``scripts/test-examples.sh`` exports their addresses), a seeded modulestore
in a temporary directory, and one key prefix per test so no two tests share
an entry.

Run with ``-p no:django``: the example configures Django itself.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

REQUIRED = ("STRATACACHE_MEMCACHED", "STRATACACHE_S3_ENDPOINT", "STRATACACHE_S3_BUCKET")
_missing = [name for name in REQUIRED if not os.environ.get(name)]
if _missing:
    raise RuntimeError(
        f"{', '.join(_missing)} not set: run the example tests with `bash scripts/test-examples.sh`, or start "
        'the servers with `bash scripts/servers.sh start` and `eval "$(bash scripts/servers.sh env)"`'
    )

_var = tempfile.mkdtemp(prefix="stratacache-outline-tests-")
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "outline_site.settings",
        "DEMO_VAR": _var,
        "DEMO_QUERY_DELAY_MS": "0.2",
        "DEMO_SHARED_CACHE": "memcached",
        "DEMO_STORAGE": "s3",
    }
)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from courses import counters  # noqa: E402
from outline_site import settings as site_settings  # noqa: E402

call_command("demo_setup", stdout=io.StringIO())


class Counts:
    """Counter deltas since the object was made (``counts["db_queries"]``)."""

    def __init__(self) -> None:
        self.start = counters.snapshot()

    def __getitem__(self, name: str) -> int:
        return counters.snapshot().get(name, 0) - self.start.get(name, 0)


@pytest.fixture
def counts():
    """Call it to start counting: ``c = counts()``, then ``c["outline_loads"]``."""
    return Counts


def _site(mode: str):
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    caches, stratacache = site_settings.cache_settings(prefix)
    return override_settings(DEMO_MODE=mode, DEMO_KEY_PREFIX=prefix, CACHES=caches, STRATACACHE=stratacache)


@pytest.fixture
def stratacache_site():
    """The site in ``stratacache`` mode, with fresh keys."""
    with _site("stratacache"):
        yield Client()


@pytest.fixture
def edx_site():
    """The site in ``edx`` mode, with fresh keys."""
    with _site("edx"):
        yield Client()


@pytest.fixture
def uncached_site():
    """The site with no caching."""
    with _site("none"):
        yield Client()
