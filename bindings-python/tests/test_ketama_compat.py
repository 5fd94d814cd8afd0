"""ketama compatibility with a real ketama client: pylibmc (libmemcached)
writes keys to four real memcached servers with ketama distribution, and
``MemcachedTier(hashing="ketama")`` reads each one from the server pylibmc
chose (each key is on one server only, so a read finds it only there).

pylibmc is installed by scripts/test-python.sh (apt libmemcached-dev, pip
pylibmc) when missing."""

from __future__ import annotations

import pylibmc
import pytest
from fleet_support import Fleet

from stratacache.tiers import MemcachedTier

KEYS = [f"course_outline|v3|course-v1:Org+C{i:04d}+2025" for i in range(400)]


@pytest.fixture(scope="module")
def fleet():
    f = Fleet("fleet")
    yield f
    f.stop()


def per_server(fleet: Fleet) -> list:
    """The keys each server holds, asked of each server alone."""
    found = []
    for server in fleet.memcached:
        values = MemcachedTier([server]).get_many(KEYS)
        found.append({k for k, v in zip(KEYS, values) if v is not None})
    return found


@pytest.mark.parametrize(
    ("behaviors", "hashing"),
    [({"ketama_weighted": True}, "ketama"), ({"ketama": True}, "ketama_plain")],
)
def test_stratacache_reads_what_pylibmc_wrote_with_ketama(fleet, behaviors, hashing):
    for server in fleet.memcached:
        MemcachedTier([server]).clear()
    client = pylibmc.Client(fleet.memcached, binary=False, behaviors=behaviors)
    for k in KEYS:
        assert client.set(k, f"value of {k}".encode())
    held = per_server(fleet)
    # Spread over the four servers, each key on one.
    assert all(len(keys) > len(KEYS) / 10 for keys in held), [len(k) for k in held]
    assert sum(len(keys) for keys in held) == len(KEYS)

    tier = MemcachedTier(fleet.memcached, hashing=hashing)
    values = tier.get_many(KEYS)
    assert values == [f"value of {k}".encode() for k in KEYS]
    # And the other way round: what stratacache writes, pylibmc reads.
    tier.set_many([(k, b"from stratacache", None) for k in KEYS[:100]])
    assert all(client.get(k) == b"from stratacache" for k in KEYS[:100])

    # The controls: rendezvous hashing and the other ketama put most keys elsewhere.
    other = "ketama_plain" if hashing == "ketama" else "ketama"
    for wrong in ("rendezvous", other):
        found = MemcachedTier(fleet.memcached, hashing=wrong).get_many(KEYS[100:])
        assert sum(v is not None for v in found) < 0.5 * len(KEYS[100:]), wrong
