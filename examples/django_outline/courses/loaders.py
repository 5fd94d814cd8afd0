"""The expensive computations the caches spare: a course outline built from
the modulestore (the "block transformers" of Open edX), and a course
overview (the metadata an enrollment list shows, Open edX's
``CourseOverview``).

Both return plain JSON data (dicts, lists, strings, numbers, booleans,
None), so they can be stored with the JSON codec that the edge worker reads
too. Each call is counted as one loader call (:mod:`courses.counters`).
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from . import counters
from .modulestore import CourseNotFound, Modulestore


def build_outline(store: Modulestore, course_id: str, version: int) -> dict:
    """The outline of ``course_id`` at ``version``: sections, subsections,
    units and components, with titles, grading, due dates and per-subsection
    counts. Loads the structure (one large read), then the definition of
    every section and subsection for its summary (many small reads)."""
    counters.add(counters.OUTLINE_LOADS)
    blocks = store.structure(course_id, version)
    root = blocks[blocks["root"]]
    sections = []
    for section_id in root["children"]:
        section = blocks[section_id]
        subsections = []
        for sub_id in section["children"]:
            sub = blocks[sub_id]
            units = []
            counts: Counter = Counter()
            for unit_id in sub["children"]:
                unit = blocks[unit_id]
                components = []
                for comp_id in unit["children"]:
                    comp = blocks[comp_id]
                    counts[comp["type"]] += 1
                    fields = comp["fields"]
                    components.append(
                        {
                            "id": comp_id,
                            "type": comp["type"],
                            "title": fields["display_name"],
                            "graded": bool(sub["fields"]["graded"] and comp["type"] == "problem"),
                            "weight": fields.get("weight"),
                        }
                    )
                units.append(
                    {"id": unit_id, "title": unit["fields"]["display_name"], "components": components}
                )
            fields = sub["fields"]
            subsections.append(
                {
                    "id": sub_id,
                    "title": fields["display_name"],
                    "summary": store.definition(sub["definition"]).get("summary", ""),
                    "graded": fields["graded"],
                    "format": fields["format"],
                    "due": fields["due"],
                    "counts": dict(sorted(counts.items())),
                    "units": units,
                }
            )
        sections.append(
            {
                "id": section_id,
                "title": section["fields"]["display_name"],
                "summary": store.definition(section["definition"]).get("summary", ""),
                "subsections": subsections,
            }
        )
    fields = root["fields"]
    return {
        "course_id": course_id,
        "version": version,
        "title": fields["display_name"],
        "edited_on": fields["edited_on"],
        "sections": sections,
    }


def load_overview(store: Modulestore, course_id: str) -> Optional[dict]:
    """The metadata of ``course_id`` (None if there is no such course), as
    ``get_course`` gives it: the active version, the whole structure, and the
    root block's definition (three queries)."""
    counters.add(counters.OVERVIEW_LOADS)
    version = store.published_version(course_id)
    if version is None:
        return None
    try:
        blocks = store.structure(course_id, version)
    except CourseNotFound:
        return None
    root = blocks[blocks["root"]]
    fields = root["fields"]
    content = store.definition(root["definition"])
    return {
        "course_id": course_id,
        "version": version,
        "name": fields["display_name"],
        "org": fields["org"],
        "number": fields["number"],
        "run": fields["run"],
        "start": fields["start"],
        "end": fields["end"],
        "pacing": fields["pacing"],
        "language": fields["language"],
        "effort": fields["effort"],
        "short_description": content.get("short_description", ""),
        "sections": len(root["children"]),
    }
