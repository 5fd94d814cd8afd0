"""MemcachedTier and its client (stratacache._core.MemcachedClient) over the two
real memcached instances of scripts/servers.sh: key→server mapping shared
with Django's PyMemcacheCache, batching, item limits, add, TTLs, deletes,
timeouts on a frozen server, connection errors, reconnects, threads."""

from __future__ import annotations

import os
import random
import string
import threading
import time

import pytest
from conftest import servers

from stratacache import TieredCache, _core, signing_keys_from_secret
from stratacache.tiers import MemcachedTier, _servers

MEMCACHED = os.environ["STRATACACHE_MEMCACHED"]
NODES = MEMCACHED.split(",")
# Pickle over a shared tier needs signing keys (stratacache refuses otherwise).
KEYS = signing_keys_from_secret("test_memcached secret")


def single(node: str, **kwargs) -> _core.MemcachedClient:
    """A client of one server only (to see where a key really is)."""
    return _core.MemcachedClient(_servers([node]), **kwargs)


def random_keys(n: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + ":|%#-_."
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120))) for _ in range(n)]


# -- key → server -------------------------------------------------------------


def test_murmur3_matches_pymemcache():
    from pymemcache.client.murmur3 import murmur3_32

    rng = random.Random(3)
    texts = ["", "a", "ab", "abc", "abcd", "127.0.0.1:11211-key", "é", "日本語のキー", "\x00\x01\xff"]
    texts += ["".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    for text in texts:
        for seed in (0, 1, 0xDEADBEEF):
            assert _core.murmur3_32(text, seed) == murmur3_32(text, seed), (text, seed)


@pytest.mark.parametrize(
    "location",
    [
        NODES,
        ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "cache.internal:11211", "[::1]:11212"],
        "10.0.0.1:11211;10.0.0.2:11211,unix:/run/memcached.sock",
    ],
)
def test_key_to_server_mapping_is_pymemcache_hashclients(location):
    """Django's PyMemcacheCache is a pymemcache HashClient with its default
    RendezvousHash: we pick the same server for every key."""
    from pymemcache.client.base import normalize_server_spec
    from pymemcache.client.rendezvous import RendezvousHash

    if isinstance(location, str):
        import re

        location = re.split("[;,]", location)
    ring = RendezvousHash()
    for server in location:
        spec = normalize_server_spec(server)
        ring.add_node(f"{spec[0]}:{spec[1]}" if isinstance(spec, tuple) else spec)
    tier = MemcachedTier(location, key_prefix=":1:")
    for key in random_keys(2000):
        assert tier.client.server_for(key) == ring.get_node(":1:" + key)


def test_django_pymemcachecache_finds_our_keys_on_the_same_server():
    from django.core.cache import caches

    django_cache = caches["memcached"]  # PyMemcacheCache over the same LOCATION
    tier = MemcachedTier.from_django("memcached")
    tier.clear()
    keys = [f"shared-{i}" for i in range(60)]
    tier.set_many([(k, b"ours", 60_000) for k in keys])
    # the key is on the server both pick, and only there
    for key in keys[:20]:
        node = tier.client.server_for(key)
        for other in NODES:
            found = single(other, key_prefix=":1:").get_many([key])[0]
            assert (found == b"ours") == (other == node), (key, node, other)
    # a plain Django delete reaches the same server: invalidation works across both
    django_cache.delete_many(keys[:30])
    got = tier.get_many(keys)
    assert got[:30] == [None] * 30 and got[30:] == [b"ours"] * 30
    # and Django's own values are on the servers we would read them from
    django_cache.set("written-by-django", "x", 60)
    raw = tier.get_many(["written-by-django"])[0]
    assert raw is not None  # Django's pickled bytes (our core would refuse them: not an envelope)


# -- batches ------------------------------------------------------------------


def test_get_many_spans_servers_in_order_with_misses(memcached):
    keys = [f"k{i}" for i in range(250)]
    memcached.set_many([(k, k.encode() * 3, 60_000) for k in keys[::2]])
    nodes = {memcached.client.server_for(k) for k in keys}
    assert len(nodes) == 2  # both servers take part
    got = memcached.get_many(keys)
    assert got == [k.encode() * 3 if i % 2 == 0 else None for i, k in enumerate(keys)]
    assert memcached.get_many([]) == []
    # duplicates are answered at each position
    assert memcached.get_many(["k0", "k1", "k0"]) == [b"k0k0k0", None, b"k0k0k0"]


def test_values_of_any_size_and_bytes(memcached):
    values = {
        "empty": b"",
        "crlf": b"\r\nEND\r\nVALUE x 0 3\r\n",
        "big": os.urandom(1000 * 1024),  # under the 1 MiB item size
        "binary": bytes(range(256)) * 10,
        "32k": os.urandom(32 * 1024),  # read into a buffer of its own
        "big2": b"\r\n" * (300 * 1024),
        "last": b"x",
    }
    memcached.set_many([(k, v, None) for k, v in values.items()])
    keys = [*values, "missing"]
    for _ in range(3):  # the connections stay in sync
        assert memcached.get_many(keys) == [*values.values(), None]
        assert memcached.get_many(keys[::-1]) == [None, *list(values.values())[::-1]]


def test_item_over_the_server_limit_is_refused_and_the_connection_stays_in_sync(memcached):
    with pytest.raises(OSError, match="did not store 1 item"):
        memcached.set_many([("too-big", b"x" * (2 * 1024 * 1024), 60_000), ("small", b"s", 60_000)])
    assert memcached.get_many(["too-big", "small"]) == [None, b"s"]
    assert memcached.server_item_size_max() == 1024 * 1024


def test_chunked_values_through_the_tier(memcached):
    cache = TieredCache([memcached], signing_keys=KEYS, local=None)
    big = os.urandom(3 * 1024 * 1024 + 5)
    cache.set_all_tiers("big", big, ttl=60)
    assert TieredCache([memcached], signing_keys=KEYS, local=None).get("big") == big
    assert TieredCache([memcached], signing_keys=KEYS, local=None).get_many(["big", "nope"]) == {"big": big}


def test_invalid_keys_are_refused():
    tier = MemcachedTier(MEMCACHED)
    for key in ("has space", "", "x" * 251, "new\nline", "é"):
        with pytest.raises(ValueError, match="not a valid memcached key"):
            tier.get_many([key])
    with pytest.raises(ValueError, match="not a valid memcached key"):
        MemcachedTier(MEMCACHED, key_prefix="a b")


# -- add, TTLs, deletes -------------------------------------------------------


def test_add_takes_a_lease_once(memcached):
    assert memcached.add_many([("lease:a", b"me", 5_000), ("lease:b", b"me", 5_000)]) == [True, True]
    assert memcached.add_many([("lease:a", b"other", 5_000), ("lease:c", b"other", 5_000)]) == [False, True]
    assert memcached.get_many(["lease:a"]) == [b"me"]


def test_ttls_expire_and_long_ttls_are_kept(memcached):
    day = 24 * 3600 * 1000
    memcached.set_many([("short", b"1", 1_000), ("forever", b"2", None), ("60-days", b"3", 60 * day)])
    assert memcached.get_many(["short", "forever", "60-days"]) == [b"1", b"2", b"3"]
    time.sleep(2.2)  # memcached expires on whole seconds
    # 60 days is sent as a Unix time (memcached reads more than 30 days as one)
    assert memcached.get_many(["short", "forever", "60-days"]) == [None, b"2", b"3"]


def test_delete_many(memcached):
    memcached.set_many([(f"d{i}", b"v", 60_000) for i in range(20)])
    memcached.delete_many([f"d{i}" for i in range(10)] + ["never-there"])
    assert memcached.get_many([f"d{i}" for i in range(20)]) == [None] * 10 + [b"v"] * 10
    memcached.delete_many([])


def test_key_prefix_isolates(memcached):
    a = MemcachedTier(MEMCACHED, key_prefix="a:")
    b = MemcachedTier(MEMCACHED, key_prefix="b:")
    a.set_many([("k", b"from a", None)])
    assert b.get_many(["k"]) == [None]
    assert memcached.get_many(["a:k"]) == [b"from a"]


def test_server_stats(memcached):
    stats = memcached.server_stats()
    assert set(stats) == set(NODES)
    assert all("curr_items" in s for s in stats.values())


# -- failures -----------------------------------------------------------------


def test_connection_refused_names_the_server():
    dead = MemcachedTier("127.0.0.1:1")  # nothing listens there
    with pytest.raises(ConnectionRefusedError, match=r"memcached 127\.0\.0\.1:1"):
        dead.get_many(["k"])
    assert dead.server_stats()["127.0.0.1:1"]["error"]


def test_frozen_server_times_out_once_and_the_read_degrades(memcached, redis_tier):
    writer = TieredCache([memcached, redis_tier], signing_keys=KEYS, local=None)
    keys = [f"f{i}" for i in range(40)]
    writer.get_many_or_load(keys, lambda ks: {k: k.upper() for k in ks}, ttl=600)
    tier = MemcachedTier(MEMCACHED, timeout=0.3)
    reader = TieredCache([tier, redis_tier], signing_keys=KEYS, local=None, cooldown=(3, 0.2))
    servers("freeze", "memcached")  # both: accept connections, never answer
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="memcached"):
            tier.get_many(keys)
        took = time.monotonic() - start
        assert 0.25 < took < 0.6  # one timeout for both servers, not one each
        start = time.monotonic()
        assert reader.get_many(keys) == {k: k.upper() for k in keys}  # from Redis
        assert time.monotonic() - start < 0.8
        calls = []
        assert reader.get_or_load("cold", lambda: calls.append(1) or "loaded", ttl=60) == "loaded"
        assert calls == [1]
        assert reader.stats()["tiers"][0]["errors"] >= 1
    finally:
        servers("thaw", "memcached")
    deadline = time.monotonic() + 5
    while reader.stats()["tiers"][0]["hits"] == 0 and time.monotonic() < deadline:
        time.sleep(0.25)  # out of the cool-down
        reader.get_many(keys)
    assert reader.stats()["tiers"][0]["hits"] > 0


def test_one_frozen_server_fails_its_keys_only_within_the_timeout(memcached):
    keys = [f"g{i}" for i in range(50)]
    memcached.set_many([(k, b"v", 60_000) for k in keys])
    tier = MemcachedTier(MEMCACHED, timeout=0.3, retry_after=0.3)
    assert tier.get_many(keys) == [b"v"] * 50
    frozen = {k for k in keys if tier.client.server_for(k) == NODES[1]}
    servers("freeze", "memcached2")
    try:
        start = time.monotonic()
        values, failed = tier.get_many_outcome(keys)
        assert time.monotonic() - start < 0.6
        # the frozen server's keys are reported failed (not missing); the live server's are served
        assert set(failed) == frozen and frozen
        assert values == [None if k in frozen else b"v" for k in keys]
        assert not tier.health()[NODES[1]]["up"]
        # while it is down, its keys fail at once (no second timeout)
        start = time.monotonic()
        assert set(tier.get_many_outcome(keys)[1]) <= frozen
        assert time.monotonic() - start < 0.2
    finally:
        servers("thaw", "memcached2")
    time.sleep(0.4)  # past retry_after: the next batch probes the server
    assert tier.get_many(keys) == [b"v"] * 50  # back by itself, the timed-out connection replaced
    assert tier.health()[NODES[1]]["up"] and tier.health()[NODES[1]]["recoveries"] == 1


def test_restarted_server_is_used_again_at_once(memcached):
    tier = MemcachedTier(MEMCACHED)
    tier.set_many([("before", b"1", None)])
    assert tier.get_many(["before"]) == [b"1"]  # pooled connections to both servers
    servers("stop", "memcached")
    try:
        with pytest.raises(OSError):  # every server failed: the whole tier is out
            tier.get_many(["before", *(f"spread{i}" for i in range(20))])
    finally:
        servers("start", "memcached")
    # the first operation after the restart succeeds (dead pooled connections are replaced)
    assert tier.get_many(["before", "x"]) == [None, None]
    tier.set_many([("after", b"2", None)])
    assert tier.get_many(["after"]) == [b"2"]


def test_restart_while_idle_is_invisible(memcached):
    tier = MemcachedTier(MEMCACHED)
    keys = [f"r{i}" for i in range(30)]
    assert tier.get_many(keys) == [None] * 30  # connections pooled
    servers("stop", "memcached")
    servers("start", "memcached")
    assert tier.get_many(keys) == [None] * 30  # stale connections replaced, no error
    assert tier.add_many([("r0", b"x", 5_000)]) == [True]


# -- threads ------------------------------------------------------------------


def test_threads_share_one_tier(memcached):
    keys = [f"t{i}" for i in range(200)]
    memcached.set_many([(k, k.encode(), 60_000) for k in keys])
    errors = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(40):
                batch = rng.sample(keys, 30)
                assert memcached.get_many(batch) == [k.encode() for k in batch]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- the read driver over the native client -----------------------------------


def test_undecodable_payload_is_a_logged_miss(memcached, caplog):
    sealed = _core.encode_envelope(b"\x80\x05not a pickle", codec="pickle", created_at_ms=_core.now_ms())
    memcached.set_many([("broken", sealed, 60_000)])
    # Opted in: the unsigned pickle reaches the decoder, which fails.
    reader = TieredCache([memcached], local=None, allow_unsigned_pickle=True)
    with caplog.at_level("WARNING", logger="stratacache"):
        assert reader.get_many(["broken"]) == {}
    assert "could not decode the value of 'broken'" in caplog.text
    assert reader.stats()["reads"]["decode_errors"] == 1
    assert reader.get_or_load("broken", lambda: "reloaded", ttl=60) == "reloaded"


def test_values_in_another_codec_are_decoded_too(memcached):
    TieredCache([memcached], signing_keys=KEYS, codec="json").set_all_tiers("j", {"a": [1, 2]}, ttl=60)
    TieredCache([memcached], signing_keys=KEYS).set_all_tiers("p", {"b": (3,)}, ttl=60)
    reader = TieredCache([memcached], signing_keys=KEYS, local=None)  # pickle by default
    assert reader.get_many(["j", "p", "none"]) == {"j": {"a": [1, 2]}, "p": {"b": (3,)}}


def test_a_subclass_that_overrides_get_many_is_called(memcached):
    calls = []

    class Counting(MemcachedTier):
        def get_many(self, keys):
            calls.append(list(keys))
            return super().get_many(keys)

    tier = Counting(MEMCACHED)
    assert tier.native_client is None
    assert MemcachedTier(MEMCACHED).native_client is not None
    TieredCache([tier], signing_keys=KEYS).set_all_tiers("c", 1, ttl=60)
    assert TieredCache([tier], signing_keys=KEYS, local=None).get_many(["c", "d"]) == {"c": 1}
    assert calls == [["c", "d"]]


def test_get_many_keeps_the_callers_keys(memcached):
    from stratacache import Key

    built = Key("ns", 2)("a b")
    cache = TieredCache([memcached], signing_keys=KEYS)
    cache.set_all_tiers(built, "built", ttl=60)
    cache.set_all_tiers("plain key with spaces", "plain", ttl=60)
    got = TieredCache([memcached], signing_keys=KEYS, local=None).get_many(
        iter([built, "plain key with spaces", "missing"])
    )
    assert got == {built: "built", "plain key with spaces": "plain"}
    assert [type(k) for k in got] == [type(built), str]
    with pytest.raises(TypeError, match="cache keys are str"):
        cache.get_many(["ok", 42])


def test_async_reads_use_the_same_tier(memcached):
    import asyncio

    cache = TieredCache([memcached], signing_keys=KEYS, local=None)
    cache.set_all_tiers("a", "x", ttl=60)

    async def main():
        return await asyncio.gather(*(cache.aget_many(["a", "b"]) for _ in range(20)))

    assert asyncio.run(main()) == [{"a": "x"}] * 20


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_uses_its_own_connections(memcached):
    memcached.set_many([("fork", b"v", 60_000)])
    assert memcached.get_many(["fork"]) == [b"v"]  # the parent pools connections
    pid = os.fork()
    if pid == 0:  # the child: its reads must not interleave with the parent's sockets
        ok = all(memcached.get_many(["fork", "nope"]) == [b"v", None] for _ in range(50))
        os._exit(0 if ok else 1)
    for _ in range(50):
        assert memcached.get_many(["fork", "nope"]) == [b"v", None]
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
