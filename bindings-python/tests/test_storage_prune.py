"""Storage tiers (issue 17, item 5): object names valid on every filesystem
and object store, entries that carry their expiry, and ``stratacache_prune``
(expired entries, old versions, orphan chunks; dry run) over a real
filesystem and the real S3 server."""

import io
import json
import os
import re
import time

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.test import override_settings

from stratacache import Key, TieredCache, signing_keys_from_secret
from stratacache.django import reset_caches
from stratacache.django.management.commands.stratacache_prune import key_family, plan_prune
from stratacache.tiers import StorageTier, storage_key, storage_name

SECRET = "a test secret of 32 bytes......!"
KEYRING = signing_keys_from_secret(SECRET)
WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


@pytest.mark.parametrize(
    "key",
    [
        "outline|v3|course-v1%3AedX%2BDemoX%2BDemo",
        'a:b|c<d>e"f\\g?h*i',
        ".hidden",
        "CON",
        "Aux.txt",
        "trailing. ",
        "é ü 漢字",
        "x" * 240,
        "AbC",
    ],
)
def test_storage_names_are_valid_everywhere_and_injective(key):
    name = storage_name("", key)
    assert re.fullmatch(r"(?:[a-z0-9._-]|%[0-9A-F]{2}|%-[0-9a-f]{40}$)+", name), (
        name
    )  # nothing Windows, S3 or a shell refuses
    assert not name.startswith(".") and not name.endswith((".", " "))
    assert not WINDOWS_RESERVED.match(name)
    assert len(name) <= 200
    if len(key) < 60:
        assert storage_key(name) == key
    assert storage_name("blocks", key) == f"blocks/{name}"


def test_names_differing_in_case_or_escape_never_collide():
    keys = ["AbC", "abc", "ABC", "a|b", "a%7Cb", "a%7cb", "x" * 240, "x" * 239 + "y"]
    names = {storage_name("", k).lower() for k in keys}  # as a case-insensitive filesystem sees them
    assert len(names) == len(keys)


def test_key_family_groups_versions():
    assert key_family("outline|v3|course") == ("outline|*|course", 3)
    assert key_family("outline|v12") == ("outline|*", 12)
    assert key_family("plain key") == (None, None)
    assert key_family("tiercache.chunk|v1|x") == (None, None)


def fs_cache(tmp_path, **kwargs):
    storage = FileSystemStorage(location=str(tmp_path), allow_overwrite=True)
    tier = StorageTier(storage, prefix="blocks", item_limit=4096)
    return TieredCache([tier], local=None, signing_keys=SECRET, **kwargs), tier


def test_filesystem_tier_reads_back_keys_with_windows_invalid_characters(tmp_path):
    cache, tier = fs_cache(tmp_path)
    key = Key("outline", 1)("course-v1:edX+DemoX+Demo")
    cache.set_all_tiers(key, {"blocks": 3})
    files = [p.name for p in (tmp_path / "blocks").iterdir()]
    assert files and all(not set('|:<>"\\?*') & set(f) for f in files)
    assert TieredCache([tier], local=None, signing_keys=SECRET).get(key) == {"blocks": 3}


def test_prune_plan_removes_expired_old_versions_and_their_chunks(tmp_path):
    cache, tier = fs_cache(tmp_path)
    big = os.urandom(10_000).hex()  # chunked: past the 4 KB item limit, even compressed
    for version in (1, 2, 3):
        cache.set_all_tiers(Key("outline", version)("c1"), big + str(version))
    cache.set_all_tiers(Key("outline", 1)("c2"), "only version")
    cache.set_all_tiers("short-lived", "gone soon", ttl=0.05)
    cache.set_all_tiers("forever", "stays", ttl=None)
    time.sleep(0.1)
    before = set(tier.names())
    now = int(time.time() * 1000)
    plan = plan_prune(tier, keep=1, now_ms=now, keyring=KEYRING)
    assert plan.scanned == len(before)
    assert plan.expired == [storage_name("", "short-lived")]
    assert sorted(plan.old_versions) == sorted(storage_name("", Key("outline", v)("c1")) for v in (1, 2))
    assert len(plan.orphan_chunks) >= 2 * 5  # the chunks of the two old versions
    tier.delete_names(plan.names)
    fresh = TieredCache([tier], local=None, signing_keys=SECRET)
    assert fresh.get(Key("outline", 3)("c1")) == big + "3"  # the newest version and its chunks stay
    assert fresh.get(Key("outline", 1)("c2")) == "only version"
    assert fresh.get("forever") == "stays"
    assert fresh.get(Key("outline", 2)("c1"), None) is None
    again = plan_prune(tier, keep=1, now_ms=now, keyring=KEYRING)
    assert again.names == []


@pytest.fixture
def s3_settings(s3_bucket, request):
    prefix = f"prune-{request.node.name[:30]}"
    conf = {"TIERS": [{"STORAGE": "stratacache", "PREFIX": prefix}], "LOCAL": None}
    with override_settings(STRATACACHE=conf):
        reset_caches()
        from stratacache.django import get_cache

        cache = get_cache()
        cache.tiers[0].clear()
        yield cache
        cache.tiers[0].clear()
    reset_caches()


def test_prune_command_dry_run_then_prune_on_s3(s3_settings):
    cache = s3_settings
    for version in (1, 2, 3):
        cache.set_all_tiers(Key("grades", version)("u7"), {"v": version})
    cache.set_all_tiers("short-lived", "x", ttl=0.05)
    time.sleep(0.1)
    tier = cache.tiers[0]
    assert len(tier.names()) == 4
    out, err = io.StringIO(), io.StringIO()
    call_command("stratacache_prune", "--dry-run", "--keep", "2", stdout=out, stderr=err)
    assert "would delete 2 (1 expired, 1 old versions" in out.getvalue()
    assert "obj" in err.getvalue()  # the progress bar (tqdm, on stderr)
    assert len(tier.names()) == 4  # a dry run deletes nothing
    out = io.StringIO()
    call_command("stratacache_prune", "--keep", "2", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["default/storage"]["deleted"] == 2 and not report["default/storage"]["dry_run"]
    assert sorted(tier.names()) == sorted(storage_name("", Key("grades", v)("u7")) for v in (2, 3))
    assert cache.get(Key("grades", 3)("u7")) == {"v": 3}


def test_prune_refuses_keep_zero(s3_settings):
    with pytest.raises(CommandError, match="--keep"):
        call_command("stratacache_prune", "--keep", "0", stdout=io.StringIO())


def test_names_of_the_older_scheme_are_not_taken_for_keys():
    assert storage_key("outline|v3|course-v1:edX") is None
    assert storage_key("Outline") is None
    assert storage_key("outline%7Cv3") == "outline|v3"
