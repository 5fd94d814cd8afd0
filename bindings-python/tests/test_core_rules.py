"""Rules that live in the core once: step tags, the configuration value,
host TTLs, tier presets and lease-tier choice (core/src/tiered/spec.rs)."""

import math
from datetime import timedelta

import pytest

from stratacache import _core, _driver
from stratacache._errors import ConfigurationError
from stratacache.tiered import DEFAULT_TTL, LeasePolicy, TieredCache
from stratacache.tiers import DjangoCacheTier, MemcachedTier, RedisTier, StorageTier


def test_the_driver_handles_exactly_the_cores_step_kinds():
    assert set(_driver.HANDLED) | {"done"} == set(_core.STEP_KINDS)
    with pytest.raises(RuntimeError, match="unknown step"):
        next(_driver._answer(None, None, ("bogus",)))
    assert len(_core.STEP_KINDS) == len(set(_core.STEP_KINDS))


def test_item_limits_come_from_the_core_presets():
    assert MemcachedTier("127.0.0.1:1").item_limit == _core.MEMCACHED_VALUE_LIMIT
    assert RedisTier("redis://127.0.0.1:1/0").item_limit == _core.tier_preset("redis")["item_limit"]
    assert StorageTier(object()).item_limit == _core.tier_preset("storage")["item_limit"]
    assert DjangoCacheTier("x").item_limit == _core.tier_preset("generic")["item_limit"]
    assert MemcachedTier("127.0.0.1:1", item_limit=2048).item_limit == 2048
    with pytest.raises(ValueError, match="generic"):
        _core.tier_preset("mongo")


def test_unset_options_take_the_core_defaults():
    cache = TieredCache([MemcachedTier("127.0.0.1:1")], codec="json")
    (tier,) = cache._core.tier_configs()
    assert tier["max_ttl_ms"] == 30 * 24 * 3600 * 1000
    assert not tier["leases"]
    config = cache._core.config()
    assert config["default_ttl_ms"] == 300_000
    assert config["local"] == (10_000, 64 * 1024 * 1024, 60_000)
    assert config["cooldown"] == (3, 5_000)
    assert (config["compress_at"], config["ttl_jitter"], config["xfetch_beta"]) == (1024, 0.1, 1.0)
    forever = TieredCache(codec="json", default_ttl=None, local=None, compress_at=None, cooldown=(2, 0.5))
    config = forever._core.config()
    assert (config["default_ttl_ms"], config["local"], config["compress_at"]) == (None, None, None)
    assert config["cooldown"] == (2, 500)


def test_the_core_chooses_the_lease_tier():
    tiers = [StorageTier(object()), RedisTier("redis://127.0.0.1:1/0")]
    cache = TieredCache(tiers, codec="json", leases=LeasePolicy(max_wait=0.5))
    assert [t["leases"] for t in cache._core.tier_configs()] == [False, True]
    assert cache._core.config()["lease"] == (10_000, 500, 100)


def test_bad_configuration_values_are_refused_by_the_core():
    with pytest.raises(ConfigurationError, match="stale_ttl"):
        TieredCache(codec="json", stale_ttl=-1)
    with pytest.raises(ConfigurationError, match="signing_keys_from_secret"):
        TieredCache([MemcachedTier("127.0.0.1:1")])


@pytest.mark.parametrize(
    ("ttl", "stored"),
    [(1.5, True), (timedelta(seconds=3), True), (None, True), (DEFAULT_TTL, True), (0, False), (-5, False)],
)
def test_host_ttls_go_through_the_core(ttl, stored):
    cache = TieredCache(codec="json")
    cache.set("k", 1, ttl)
    assert (cache.get("k") == 1) is stored


def test_a_nan_or_odd_ttl_is_a_clear_error():
    cache = TieredCache(codec="json")
    with pytest.raises(ValueError, match="NaN"):
        cache.set("k", 1, math.nan)
    with pytest.raises(TypeError, match="ttl"):
        cache.set("k", 1, "10")


def test_loader_results_are_shaped_by_the_core():
    assert _core.shape_loaded(["a", "b"], {"a": 1}) == [
        (True, 1),
        (False, "the batch loader returned no value for key 'b'"),
    ]
    assert _core.shape_loaded(["a", "b"], [None, 2]) == [(True, None), (True, 2)]
    shaped = _core.shape_loaded(["a", "b"], [1])
    assert all(not ok and "returned 1 values for 2 keys" in message for ok, message in shaped)
