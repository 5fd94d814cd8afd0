"""The example's pages and endpoints.

- ``/courses/<course_id>/``: the course-outline page (HTML).
- ``/api/courses/<course_id>/outline``: the outline as JSON (``?version=N``
  for a given published version); the edge worker's loader.
- ``/api/courses/<course_id>/version``: the published version (the edge
  worker builds its keys from it).
- ``/api/enrollments/<username>``: a learner's enrollments with the
  overview of each course (50 to 200 courses).
- ``/courses/<course_id>/publish`` (POST): publishes a new version.
- ``/edge/entries?key=...``: raw entries of Django's outline tiers, for the
  edge worker's origin tier (needs the ``X-Edge-Token`` header).
- ``/_demo/counters``: this process's counters (the demo reads them).

This is a demo: there are no users, and publishing needs no login.
"""

from __future__ import annotations

import base64
import hmac
import random
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from stratacache.django import get_cache

from . import counters
from .caching import OUTLINE_KEY, courses, modulestore
from .modulestore import LARGE_COURSE, CourseNotFound, catalog

MAX_EDGE_KEYS = 100


def enrollments_for(username: str) -> list:
    """The course ids ``username`` is enrolled in: 50 to 200 of the catalog,
    the same ones every time for a given name."""
    rng = random.Random(f"enrollments:{username}")
    ids = catalog(settings.DEMO_COURSES)
    return rng.sample(ids, min(len(ids), rng.randint(50, 200)))


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    ids = catalog(settings.DEMO_COURSES)
    return render(
        request,
        "courses/index.html",
        {
            "mode": settings.DEMO_MODE,
            "large": LARGE_COURSE,
            "courses": ids[:12],
            "shared": settings.DEMO_SHARED_CACHE,
        },
    )


@require_GET
def outline_page(request: HttpRequest, course_id: str) -> HttpResponse:
    impl = courses()
    try:
        outline = impl.outline(course_id)
        overview = impl.overviews([course_id]).get(course_id)
    except CourseNotFound:
        raise Http404(f"no course {course_id}") from None
    response = render(
        request,
        "courses/outline.html",
        {"outline": outline, "overview": overview, "mode": settings.DEMO_MODE},
    )
    response["X-Course-Version"] = str(outline["version"])
    return response


def _version_param(request: HttpRequest) -> Any:
    raw = request.GET.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise Http404("version must be a positive integer")
    return int(raw)


@require_GET
def outline_json(request: HttpRequest, course_id: str) -> JsonResponse:
    try:
        outline = courses().outline(course_id, _version_param(request))
    except CourseNotFound:
        raise Http404(f"no course {course_id} at that version") from None
    response = JsonResponse(outline, json_dumps_params={"separators": (",", ":"), "ensure_ascii": False})
    response["X-Course-Version"] = str(outline["version"])
    response["X-Cache-Key"] = OUTLINE_KEY(course_id, outline["version"])
    return response


@require_GET
def course_version(request: HttpRequest, course_id: str) -> JsonResponse:
    version = modulestore().published_version(course_id)
    if version is None:
        raise Http404(f"no course {course_id}")
    return JsonResponse({"course_id": course_id, "version": version, "key": OUTLINE_KEY(course_id, version)})


@require_GET
def enrollments(request: HttpRequest, username: str) -> JsonResponse:
    ids = enrollments_for(username)
    overviews = courses().overviews(ids)
    items = [
        {
            "course_id": cid,
            "name": o["name"],
            "org": o["org"],
            "start": o["start"],
            "end": o["end"],
            "pacing": o["pacing"],
            "url": f"/courses/{cid}/",
        }
        for cid in ids
        if (o := overviews.get(cid)) is not None
    ]
    return JsonResponse({"username": username, "count": len(items), "enrollments": items})


@csrf_exempt
@require_POST
def publish(request: HttpRequest, course_id: str) -> JsonResponse:
    try:
        version = modulestore().publish(course_id)
    except CourseNotFound:
        raise Http404(f"no course {course_id}") from None
    return JsonResponse({"course_id": course_id, "version": version, "key": OUTLINE_KEY(course_id, version)})


@require_GET
def edge_entries(request: HttpRequest) -> JsonResponse:
    """The raw bytes (envelopes, manifests, chunks) Django's outline tiers
    hold under the given keys, base64, first tier that has each: the edge
    worker's origin tier. Only in stratacache mode."""
    token = request.headers.get("X-Edge-Token", "")
    if not hmac.compare_digest(token.encode(), settings.DEMO_EDGE_TOKEN.encode()):
        return JsonResponse({"error": "send the X-Edge-Token header (settings.DEMO_EDGE_TOKEN)"}, status=403)
    if settings.DEMO_MODE != "stratacache":
        return JsonResponse(
            {"error": "the edge reads Django's entries only with DEMO_MODE=stratacache"}, status=409
        )
    keys = request.GET.getlist("key")
    if not keys or len(keys) > MAX_EDGE_KEYS:
        return JsonResponse({"error": f"give 1 to {MAX_EDGE_KEYS} key parameters"}, status=400)
    values: list = [None] * len(keys)
    for tier in get_cache("outlines").tiers:
        missing = [i for i, v in enumerate(values) if v is None]
        if not missing:
            break
        try:
            found = tier.get_many([keys[i] for i in missing])
        except Exception:  # a failing tier: try the next one
            continue
        for i, raw in zip(missing, found):
            if raw is not None:
                values[i] = base64.b64encode(bytes(raw)).decode("ascii")
    return JsonResponse({"values": values})


@require_GET
def demo_counters(request: HttpRequest) -> JsonResponse:
    """Counters of this process, and each stratacache's stats."""
    stats = {}
    if settings.DEMO_MODE == "stratacache":
        stats = {name: get_cache(name).stats() for name in ("default", "outlines")}
    return JsonResponse(
        {
            "mode": settings.DEMO_MODE,
            "shared_cache": settings.DEMO_SHARED_CACHE,
            "storage": settings.DEMO_STORAGE,
            "counters": counters.snapshot(),
            "stratacache": stats,
        }
    )


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
