"""The example's views with Django's test client, over real memcached and S3.

Each test uses courses no other test publishes, and fresh cache keys.
"""

from __future__ import annotations

import base64
import json
import threading

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.files.storage import storages
from django.test import Client

from courses.caching import OUTLINE_KEY, OVERVIEW_KEY
from courses.modulestore import LARGE_COURSE, catalog
from courses.views import enrollments_for
from stratacache.django import get_cache

COURSES = catalog(200)


def tier_stats(cache_name: str, tier: str) -> dict:
    return next(t for t in get_cache(cache_name).stats()["tiers"] if t["name"] == tier)


def test_outline_page_loads_once_then_is_served_from_the_local_tier(stratacache_site, counts):
    course = COURSES[10]
    c = counts()
    first = stratacache_site.get(f"/courses/{course}/")
    assert first.status_code == 200
    assert first["X-Course-Version"] == "1"
    assert c["outline_loads"] == 1 and c["overview_loads"] == 1
    c = counts()
    second = stratacache_site.get(f"/courses/{course}/")
    assert second.content == first.content
    assert c["outline_loads"] == 0 and c["overview_loads"] == 0
    # Only the two version checks reach the database; nothing reaches memcached.
    assert c["db_queries"] == 2
    reads = get_cache("outlines").stats()["reads"]
    assert reads["local_hits"] >= 1


def test_another_process_reads_memcached_not_the_modulestore(stratacache_site, counts):
    course = COURSES[11]
    stratacache_site.get(f"/courses/{course}/")
    for name in ("default", "outlines"):
        get_cache(name).clear_local()  # as a fresh process would start
    c = counts()
    assert stratacache_site.get(f"/courses/{course}/").status_code == 200
    assert c["outline_loads"] == 0 and c["overview_loads"] == 0
    assert tier_stats("outlines", "memcached")["hits"] == 1
    assert tier_stats("default", "memcached")["hits"] == 1


def test_large_outline_fits_memcached_compressed_and_is_in_s3(stratacache_site, counts):
    response = stratacache_site.get(f"/api/courses/{LARGE_COURSE}/outline")
    assert response.status_code == 200
    assert len(response.content) > 1024 * 1024, "the outline is over 1 MiB of JSON"
    key = response["X-Cache-Key"]
    outlines = get_cache("outlines")
    memcached, storage = outlines.tiers
    in_memcached = memcached.get_many([key])[0]
    in_s3 = storage.get_many([key])[0]
    assert in_memcached is not None and in_s3 is not None
    assert len(in_memcached) < 1024 * 1024, "stored compressed under memcached's item size"
    assert bytes(in_memcached) == bytes(in_s3)
    # Memcached lost it (evicted, restarted): S3 still answers, no rebuild.
    memcached.delete_many([key])
    outlines.clear_local()
    c = counts()
    again = stratacache_site.get(f"/api/courses/{LARGE_COURSE}/outline")
    assert json.loads(again.content) == json.loads(response.content)
    assert c["outline_loads"] == 0
    assert tier_stats("outlines", "storage")["hits"] == 1


def test_edx_style_large_outline_is_refused_by_memcached_and_read_from_storage(edx_site, counts):
    c = counts()
    first = edx_site.get(f"/courses/{LARGE_COURSE}/")
    assert first.status_code == 200
    assert c["outline_loads"] == 1
    version = first["X-Course-Version"]
    key = f"learning_sequences.get_course_outline.v1.{LARGE_COURSE}.{version}"
    assert django_cache.get(key) is None, "memcached refused the 1.3 MiB pickle (silently)"
    c = counts()
    second = edx_site.get(f"/courses/{LARGE_COURSE}/")
    assert second.content == first.content
    assert c["outline_loads"] == 0, "read back from storage"
    assert c["storage_calls"] == 1 and c["cache_calls"] >= 2


def test_publish_bumps_the_version_and_deletes_nothing(stratacache_site, counts):
    course = COURSES[12]
    v1 = stratacache_site.get(f"/api/courses/{course}/outline")
    key1 = v1["X-Cache-Key"]
    assert key1 == OUTLINE_KEY(course, 1) == f"course_outline|v1|{course}|#1"
    published = stratacache_site.post(f"/courses/{course}/publish")
    assert published.status_code == 200 and published.json()["version"] == 2
    c = counts()
    page = stratacache_site.get(f"/courses/{course}/")
    assert page["X-Course-Version"] == "2"
    assert b"(revision 2)" in page.content
    assert c["outline_loads"] == 1, "the new version is a new key"
    memcached = get_cache("outlines").tiers[0]
    assert memcached.get_many([key1])[0] is not None, "the v1 entry is still there"
    old = stratacache_site.get(f"/api/courses/{course}/outline?version=1")
    assert json.loads(old.content) == json.loads(v1.content), "versions are immutable"


def test_enrollment_list_is_one_batched_read(stratacache_site, counts):
    user = "learner-batch"
    expected = enrollments_for(user)
    assert 50 <= len(expected) <= 200
    c = counts()
    first = stratacache_site.get(f"/api/enrollments/{user}")
    assert first.status_code == 200
    assert first.json()["count"] == len(expected)
    assert c["overview_loads"] == len(expected)
    mc = tier_stats("default", "memcached")
    assert (mc["fetches"], mc["writes"]) == (1, 1), "one get and one set batch for all the courses"
    # A cold local tier (another process): one memcached batch, every course a hit.
    get_cache().clear_local()
    c = counts()
    second = stratacache_site.get(f"/api/enrollments/{user}")
    assert second.json() == first.json()
    assert c["overview_loads"] == 0
    assert c["db_queries"] == 1, "one query for all the versions"
    mc = tier_stats("default", "memcached")
    assert mc["fetches"] == 2 and mc["hits"] == len(expected)
    # And memcached holds them under the shared keys.
    course = expected[0]
    assert get_cache().tiers[0].get_many([OVERVIEW_KEY(course, 1)])[0] is not None


def test_edx_style_enrollment_list_is_one_get_per_course(edx_site, counts):
    user = "learner-edx"
    n = len(enrollments_for(user))
    edx_site.get(f"/api/enrollments/{user}")
    c = counts()
    again = edx_site.get(f"/api/enrollments/{user}")
    assert again.json()["count"] == n
    assert c["overview_loads"] == 0
    assert c["cache_calls"] == n, "edx-django-utils' TieredCache has no get_many"


def test_no_caching_reads_the_modulestore_every_time(uncached_site, counts):
    course = COURSES[13]
    for _ in range(2):
        c = counts()
        assert uncached_site.get(f"/courses/{course}/").status_code == 200
        assert c["outline_loads"] == 1 and c["overview_loads"] == 1
        assert c["cache_calls"] == 0 and c["storage_calls"] == 0
        assert c["db_queries"] > 10, "many small reads"


def test_concurrent_cold_requests_run_one_loader(stratacache_site, counts):
    # The large course: its load (hundreds of queries) outlasts the eight
    # requests' own tier reads, so all of them want the key while it loads.
    # (A reader whose remote misses began before the leader stored the value
    # and ended after its flight finished would load again: the core does not
    # look at the local tier again before claiming a flight.)
    c = counts()
    results: list = []
    start = threading.Barrier(8)

    def fetch() -> None:
        client = Client()
        start.wait()
        results.append(client.get(f"/api/courses/{LARGE_COURSE}/outline").status_code)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8
    assert c["outline_loads"] == 1, "one loader for eight concurrent requests"
    assert get_cache("outlines").stats()["reads"]["flight_waits"] >= 1


def test_edge_entries_serve_djangos_raw_bytes_to_token_holders(stratacache_site):
    course = COURSES[15]
    key = stratacache_site.get(f"/api/courses/{course}/outline")["X-Cache-Key"]
    denied = stratacache_site.get("/edge/entries", {"key": key})
    assert denied.status_code == 403
    headers = {"HTTP_X_EDGE_TOKEN": settings.DEMO_EDGE_TOKEN}
    r = stratacache_site.get("/edge/entries", {"key": [key, "course_outline|v1|nope|#1"]}, **headers)
    assert r.status_code == 200
    values = r.json()["values"]
    assert values[1] is None
    assert base64.b64decode(values[0]) == bytes(get_cache("outlines").tiers[0].get_many([key])[0])
    too_many = stratacache_site.get("/edge/entries", {"key": [f"k{i}" for i in range(101)]}, **headers)
    assert too_many.status_code == 400


def test_edge_entries_only_in_stratacache_mode(edx_site):
    r = edx_site.get("/edge/entries", {"key": "x"}, HTTP_X_EDGE_TOKEN=settings.DEMO_EDGE_TOKEN)
    assert r.status_code == 409


def test_unknown_course_and_bad_version_are_404(stratacache_site):
    assert stratacache_site.get("/courses/course-v1:No+Such+Course/").status_code == 404
    assert stratacache_site.get("/api/courses/course-v1:No+Such+Course/version").status_code == 404
    assert stratacache_site.post("/courses/course-v1:No+Such+Course/publish").status_code == 404
    assert stratacache_site.get(f"/api/courses/{COURSES[16]}/outline?version=99").status_code == 404
    assert stratacache_site.get(f"/api/courses/{COURSES[16]}/outline?version=x").status_code == 404


def test_version_endpoint_gives_the_key_the_edge_builds(stratacache_site):
    course = COURSES[17]
    r = stratacache_site.get(f"/api/courses/{course}/version")
    assert r.json() == {"course_id": course, "version": 1, "key": f"course_outline|v1|{course}|#1"}


def test_counters_endpoint(stratacache_site):
    stratacache_site.get(f"/courses/{COURSES[18]}/")
    body = stratacache_site.get("/_demo/counters").json()
    assert body["mode"] == "stratacache"
    assert body["shared_cache"] == "memcached" and body["storage"] == "s3"
    assert set(body["stratacache"]) == {"default", "outlines"}
    for stats in body["stratacache"].values():
        assert all(t["errors"] == 0 for t in stats["tiers"]), stats["tiers"]


def test_index_page(stratacache_site):
    r = stratacache_site.get("/")
    assert r.status_code == 200 and LARGE_COURSE.encode() in r.content
    assert storages["blocks"].__class__.__name__ == "CountingS3Storage"
