"""How the views get course outlines and course overviews: three ways, one
per ``DEMO_MODE``, behind the same two functions.

``stratacache``
    :class:`StratacacheCourses`: versioned keys, one ``get_or_load`` per
    outline and one ``get_many_or_load`` for all the overviews of an
    enrollment list. Tiers: request → local → memcached (→ storage for
    outlines) → loader. Values over memcached's 1 MiB item size are chunked;
    one loader runs per cold key however many requests want it.
``edx``
    :class:`EdxCourses`: the same versioned keys with edx-django-utils'
    ``TieredCache`` (request cache → ``django.core.cache.cache``, here
    memcached), written as Open edX code is: ``get_cached_response``, on a
    miss compute and ``set_all_tiers``. Outlines also get the storage
    backing edx-platform's block structures have (read storage on a
    memcached miss, write it after computing), since memcached refuses the
    large course's outline. No batched reads: one memcached ``get`` per
    course of an enrollment list.
``none``
    :class:`UncachedCourses`: every request reads the modulestore.

A publish bumps the course's version; no mode deletes anything: the next
read builds a new key.
"""

from __future__ import annotations

import pickle
import zlib
from functools import cache
from typing import Optional

from django.conf import settings

from stratacache import Key
from stratacache.django import get_cache

from . import loaders
from .modulestore import CourseNotFound, Modulestore

#: Bump the first argument's version when the shape of the cached value changes.
OUTLINE_KEY = Key("course_outline", 1)
OVERVIEW_KEY = Key("course_overview", 1)


@cache
def _modulestore(path: str, delay_ms: float) -> Modulestore:
    return Modulestore(path, delay_ms)


def modulestore() -> Modulestore:
    """The modulestore named by the settings (one per process)."""
    return _modulestore(str(settings.DEMO_MODULESTORE), settings.DEMO_QUERY_DELAY_MS)


class UncachedCourses:
    """No caching: every read goes to the modulestore."""

    name = "none"

    def outline(self, course_id: str, version: Optional[int] = None) -> dict:
        store = modulestore()
        version = version or store.published_version(course_id)
        if version is None:
            raise CourseNotFound(course_id)
        return loaders.build_outline(store, course_id, version)

    def overviews(self, course_ids: list) -> dict:
        store = modulestore()
        found = {cid: loaders.load_overview(store, cid) for cid in course_ids}
        return {cid: o for cid, o in found.items() if o is not None}


class StratacacheCourses:
    """stratacache: request → local → memcached (→ storage) → loader."""

    name = "stratacache"

    def outline(self, course_id: str, version: Optional[int] = None) -> dict:
        store = modulestore()
        version = version or store.published_version(course_id)  # one query, as edX checks it
        if version is None:
            raise CourseNotFound(course_id)
        key = OUTLINE_KEY(course_id, version)  # 'course_outline|v1|course-v1:...|#3'
        return get_cache("outlines").get_or_load(
            key, lambda: loaders.build_outline(store, course_id, version)
        )

    def overviews(self, course_ids: list) -> dict:
        store = modulestore()
        versions = store.published_versions(course_ids)  # one query for all of them
        keys = {OVERVIEW_KEY(cid, v): cid for cid, v in versions.items()}
        # One batch per tier for all the keys; the loader gets every missing one at once.
        found = get_cache().get_many_or_load(
            keys, lambda missing: [loaders.load_overview(store, keys[k]) for k in missing]
        )
        return {keys[k]: v for k, v in found.items() if v is not None}


class EdxCourses:
    """edx-django-utils' ``TieredCache``, used as Open edX code uses it."""

    name = "edx"

    def outline(self, course_id: str, version: Optional[int] = None) -> dict:
        from django.core.files.base import ContentFile
        from django.core.files.storage import storages
        from edx_django_utils.cache import TieredCache

        store = modulestore()
        version = version or store.published_version(course_id)
        if version is None:
            raise CourseNotFound(course_id)
        key = f"learning_sequences.get_course_outline.v1.{course_id}.{version}"
        cached = TieredCache.get_cached_response(key)
        if cached.is_found:
            return cached.value
        # The storage backing of edx-platform's BlockStructureStore.
        storage = storages["blocks"]
        name = f"{settings.DEMO_KEY_PREFIX}/edx/{key.replace(':', '_')}"
        try:
            with storage.open(name, "rb") as f:
                outline = pickle.loads(zlib.decompress(f.read()))
        except FileNotFoundError:
            outline = None
        except Exception as exc:  # S3's missing object
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise
            outline = None
        if outline is None:
            outline = loaders.build_outline(store, course_id, version)
            storage.save(name, ContentFile(zlib.compress(pickle.dumps(outline, protocol=4))))
        # Silently not stored in memcached when over 1 MiB (the large course).
        TieredCache.set_all_tiers(key, outline, settings.DEMO_CACHE_TTL)
        return outline

    def overviews(self, course_ids: list) -> dict:
        from edx_django_utils.cache import TieredCache

        store = modulestore()
        versions = store.published_versions(course_ids)
        out = {}
        for course_id, version in versions.items():  # one memcached get per course
            key = f"course_overview.v1.{course_id}.{version}"
            cached = TieredCache.get_cached_response(key)
            if cached.is_found:
                overview = cached.value
            else:
                overview = loaders.load_overview(store, course_id)
                TieredCache.set_all_tiers(key, overview, settings.DEMO_CACHE_TTL)
            if overview is not None:
                out[course_id] = overview
        return out


STRATEGIES = {s.name: s for s in (UncachedCourses(), EdxCourses(), StratacacheCourses())}


def courses() -> UncachedCourses | EdxCourses | StratacacheCourses:
    """The implementation for ``settings.DEMO_MODE``."""
    return STRATEGIES[settings.DEMO_MODE]
