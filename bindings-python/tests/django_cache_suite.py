"""Runs Django's own cache backend tests (``BaseCacheTests`` of
``tests/cache/tests.py`` in Django's source distribution) against
``stratacache.django.backend.TieredCacheBackend`` over a real server.

Usage: ``python django_cache_suite.py memcached|redis [unittest args]``
(the servers' addresses come from ``scripts/servers.sh env``). Django's
tests are fetched from PyPI (``pip download django==<installed>
--no-binary :all:``) into ``target/django-tests/`` when missing.

Tests whose expectation conflicts with a stratacache guarantee are skipped
here with the reason (docs/django-backend.md lists them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Test name -> why it does not apply to this backend.
SKIPPED = {
    "test_invalid_key_characters": "keys memcached would refuse are made safe (escaped), never warned about",
    "test_invalid_key_length": "long keys are made safe (digested), never warned about",
    "test_invalid_with_version_key_length": "long keys are made safe (digested), never warned about",
    "test_cull": "no MAX_ENTRIES culling: memcached/Redis evict by their own policy (LRU)",
    "test_zero_cull": "no CULL_FREQUENCY culling: memcached/Redis evict by their own policy (LRU)",
    "test_cull_delete_when_store_empty": "no culling (see test_cull)",
}


def django_tests_dir() -> Path:
    """``target/django-tests/<version>/`` holding Django's ``cache`` test
    package, downloaded from PyPI on first use."""
    import django

    version = django.get_version()
    root = REPO / "target" / "django-tests" / version
    if (root / "cache" / "tests.py").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                f"django=={version}",
                "--no-binary",
                ":all:",
                "--no-deps",
                "-d",
                tmp,
            ],
            check=True,
        )
        sdist = next(Path(tmp).glob("*.tar.gz"))
        with tarfile.open(sdist) as tar:
            prefix = f"{sdist.name[: -len('.tar.gz')]}/tests/cache/"
            members = [m for m in tar.getmembers() if m.name.lower().startswith(prefix.lower())]
            for member in members:
                member.name = "cache/" + member.name[len(prefix) :]
            # The "data" filter (no links out, no special files) where this
            # Python has it (3.9.17+, 3.10.12+, 3.11.4+).
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(root, members=members, **extra)
    return root


def configure(server: str) -> dict:
    import django
    from django.conf import settings

    if server == "memcached":
        location: object = os.environ["STRATACACHE_MEMCACHED"].split(",")
    elif server == "redis":
        location = os.environ["STRATACACHE_REDIS_URL"]
    else:
        raise SystemExit(f"unknown server {server!r}: memcached or redis")
    params = {"BACKEND": "stratacache.django.backend.TieredCacheBackend", "LOCATION": location}
    settings.configure(
        SECRET_KEY="stratacache-django-suite",
        USE_TZ=False,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "cache", "stratacache.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={"default": dict(params)},
        MIDDLEWARE=[],
        ROOT_URLCONF=[],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    return params


def build_suite(server: str, params: dict):
    import unittest

    from cache import tests as django_cache_tests
    from django.test import TestCase, override_settings

    base = django_cache_tests.BaseCacheTests
    excluded = {"cull", "zero_cull"}
    attrs = {}
    for name, reason in SKIPPED.items():
        if hasattr(base, name):
            attrs[name] = unittest.skip(reason)(getattr(base, name))
    cls = type(f"TieredCacheBackend{server.title()}Tests", (base, TestCase), attrs)
    cls = override_settings(
        CACHES=django_cache_tests.caches_setting_for_tests(base=params, exclude=excluded)
    )(cls)
    return unittest.defaultTestLoader.loadTestsFromTestCase(cls)


def main(argv: list) -> int:
    server = argv[1] if len(argv) > 1 else "memcached"
    sys.path.insert(0, str(django_tests_dir()))
    params = configure(server)
    from django.conf import settings
    from django.test.utils import get_runner

    runner = get_runner(settings)(verbosity=1, interactive=False)
    runner.setup_test_environment()
    old = runner.setup_databases()
    try:
        suite = build_suite(server, params)
        if len(argv) > 2:  # a name filter: only tests whose name contains it
            import unittest

            suite = unittest.TestSuite(t for t in suite if any(a in t.id() for a in argv[2:]))
        result = runner.run_suite(suite)
    finally:
        runner.teardown_databases(old)
        runner.teardown_test_environment()
    print(
        f"{result.testsRun} run, {len(result.failures)} failures, {len(result.errors)} errors, "
        f"{len(result.skipped)} skipped"
    )
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
