"""Fixtures over the real servers started by scripts/servers.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import stratacache
from stratacache.scope import SCOPE_VAR
from stratacache.tiers import MemcachedTier, RedisTier, StorageTier

REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "scripts" / "servers.sh"


def servers(*args: str) -> None:
    """Runs scripts/servers.sh (same port base and state dir as the suite)."""
    subprocess.run(["bash", str(SERVERS), *args], check=True, env=os.environ.copy(), capture_output=True)


@pytest.fixture(autouse=True)
def no_request_scope():
    """Every test starts outside any request scope (as a fresh thread would)."""
    token = SCOPE_VAR.set(None)
    yield
    SCOPE_VAR.reset(token)


@pytest.fixture
def memcached() -> MemcachedTier:
    tier = MemcachedTier(os.environ["STRATACACHE_MEMCACHED"])
    tier.clear()
    return tier


@pytest.fixture
def redis_tier() -> RedisTier:
    tier = RedisTier(os.environ["STRATACACHE_REDIS_URL"])
    tier.clear()
    return tier


@pytest.fixture(scope="session")
def s3_bucket() -> str:
    import boto3

    bucket = os.environ["STRATACACHE_S3_BUCKET"]
    client = boto3.client(
        "s3",
        endpoint_url=os.environ["STRATACACHE_S3_ENDPOINT"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return bucket


@pytest.fixture
def s3_storage(s3_bucket):
    from django.conf import settings
    from storages.backends.s3 import S3Storage

    return S3Storage(**settings.S3_OPTIONS)


@pytest.fixture
def s3_tier(s3_storage, request) -> StorageTier:
    tier = StorageTier(s3_storage, prefix=f"test-{request.node.name[:40]}")
    tier.clear()
    return tier


@pytest.fixture
def secret_keys():
    return [("2025a", b"a test secret of 32 bytes......!")]


@pytest.fixture
def scope():
    with stratacache.request_scope() as s:
        yield s
