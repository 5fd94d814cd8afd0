"""Process-wide counters of the work the demo measures: modulestore queries,
loader calls (outlines built, course overviews loaded) and the calls that
reach a cache server or the storage (S3).

The demo's load runner reads them from ``/_demo/counters`` at the end of a
run; the server runs one process, so these totals are the run's totals.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counts: Counter = Counter()

#: The names used by the example.
DB_QUERIES = "db_queries"  # modulestore queries (each one a round trip to the database)
OUTLINE_LOADS = "outline_loads"  # course outlines built from the modulestore
OVERVIEW_LOADS = "overview_loads"  # course overviews (metadata) loaded from the modulestore
CACHE_CALLS = "cache_calls"  # calls of a Django cache backend that reach the cache server
STORAGE_CALLS = "storage_calls"  # requests to the storage (S3, or the filesystem standing in for it)


def add(name: str, n: int = 1) -> None:
    """Adds ``n`` to counter ``name``."""
    with _lock:
        _counts[name] += n


def snapshot() -> dict:
    """The current totals, as a plain dict."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Sets every counter back to zero (tests)."""
    with _lock:
        _counts.clear()
