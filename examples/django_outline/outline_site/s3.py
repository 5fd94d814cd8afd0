"""The S3 bucket of the storage tier, created when missing."""

from __future__ import annotations

from collections.abc import Mapping


def ensure_bucket(env: Mapping) -> bool:
    """Creates the bucket ``STRATACACHE_S3_BUCKET`` on ``STRATACACHE_S3_ENDPOINT``
    if the variables name one and it does not exist. Returns True if the
    storage tier is S3."""
    endpoint = env.get("STRATACACHE_S3_ENDPOINT")
    if not endpoint or env.get("DEMO_STORAGE", "s3") != "s3":
        return False
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    bucket = env.get("STRATACACHE_S3_BUCKET", "stratacache-demo")
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=bucket)
    return True
