"""A slow "modulestore": course content in SQLite, read the way Open edX's
split modulestore is read (see ``../shared/background/``), with a fixed delay
per query standing in for the round trip to MongoDB.

Three tables, as in split:

- ``active_versions``: one row per course, pointing at its published
  structure and carrying its published version (an integer bumped by every
  publish).
- ``structures``: one immutable row per published version of a course: the
  whole block tree as one JSON document (for the large course, several MiB).
  A publish copies the structure and edits the copy; old versions stay.
- ``definitions``: the content of each block (summaries, HTML, problems),
  one small row each: the "many small reads".

Every query sleeps ``delay_ms`` first (``DEMO_QUERY_DELAY_MS``, default 1 ms)
and is counted (:mod:`courses.counters`). :func:`seed` writes a catalog of
courses, one of them large enough that its outline is over 1 MiB (over
memcached's default item size).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from . import counters

#: The course whose outline is over 1 MiB.
LARGE_COURSE = "course-v1:BigU+Everything+2025"

SCHEMA = """
CREATE TABLE IF NOT EXISTS active_versions (
    course_id TEXT PRIMARY KEY,
    published_version INTEGER NOT NULL,
    structure_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS structures (
    id INTEGER PRIMARY KEY,
    course_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous_id INTEGER,
    created_at TEXT NOT NULL,
    blocks TEXT NOT NULL,
    UNIQUE (course_id, version)
);
CREATE TABLE IF NOT EXISTS definitions (
    id INTEGER PRIMARY KEY,
    block_type TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


class CourseNotFound(LookupError):
    """No course (or no such version of it) in the modulestore."""


class Modulestore:
    """Reads and publishes courses in the SQLite file at ``path``; each query
    waits ``delay_ms`` first, as a query to a remote database would."""

    def __init__(self, path: str | Path, delay_ms: float = 1.0) -> None:
        self.path = str(path)
        self.delay = max(0.0, float(delay_ms)) / 1000.0
        self._local = threading.local()
        if not Path(self.path).exists():
            raise FileNotFoundError(
                f"no modulestore at {self.path}: create it with "
                "`python manage.py seed_modulestore` (the demo does it for you)"
            )

    # -- plumbing -----------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
        return conn

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list:
        """One round trip to the "database": the delay, then the query."""
        counters.add(counters.DB_QUERIES)
        if self.delay:
            time.sleep(self.delay)
        return self._conn().execute(sql, tuple(params)).fetchall()

    # -- reads --------------------------------------------------------------

    def published_version(self, course_id: str) -> Optional[int]:
        """The published version of ``course_id`` (one query), or None."""
        rows = self._query("SELECT published_version FROM active_versions WHERE course_id = ?", [course_id])
        return rows[0][0] if rows else None

    def published_versions(self, course_ids: Iterable[str]) -> dict:
        """``{course_id: version}`` for the courses that exist, in one query."""
        ids = list(course_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            f"SELECT course_id, published_version FROM active_versions WHERE course_id IN ({marks})", ids
        )
        return dict(rows)

    def structure(self, course_id: str, version: Optional[int] = None) -> dict:
        """The block tree of ``course_id`` at ``version`` (default: the
        published one), parsed. One query (two without a version)."""
        if version is None:
            version = self.published_version(course_id)
            if version is None:
                raise CourseNotFound(course_id)
        rows = self._query(
            "SELECT blocks FROM structures WHERE course_id = ? AND version = ?", [course_id, version]
        )
        if not rows:
            raise CourseNotFound(f"{course_id} has no version {version}")
        return json.loads(rows[0][0])

    def definition(self, definition_id: int) -> dict:
        """The content of one block (one small query)."""
        rows = self._query("SELECT data FROM definitions WHERE id = ?", [definition_id])
        return json.loads(rows[0][0]) if rows else {}

    def course_ids(self) -> list:
        """Every course id, sorted (one query)."""
        return [r[0] for r in self._query("SELECT course_id FROM active_versions ORDER BY course_id")]

    # -- writes -------------------------------------------------------------

    def publish(self, course_id: str) -> int:
        """Publishes a new version of ``course_id`` as split does: copies the
        published structure, edits the copy (the first section is renamed
        with the revision number), stores it as a new structure and points
        ``active_versions`` at it. Nothing is deleted. Returns the new
        version."""
        conn = self._conn()
        counters.add(counters.DB_QUERIES, 3)
        if self.delay:
            time.sleep(3 * self.delay)
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT a.published_version, a.structure_id, s.blocks FROM active_versions a "
                "JOIN structures s ON s.id = a.structure_id WHERE a.course_id = ?",
                [course_id],
            ).fetchone()
            if row is None:
                raise CourseNotFound(course_id)
            version, structure_id, blocks_json = row
            blocks = json.loads(blocks_json)
            new_version = version + 1
            root = blocks[blocks["root"]]
            root["fields"]["edited_on"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            if root["children"]:
                first = blocks[root["children"][0]]
                base = first["fields"]["display_name"].split(" (revision ")[0]
                first["fields"]["display_name"] = f"{base} (revision {new_version})"
            cur = conn.execute(
                "INSERT INTO structures (course_id, version, previous_id, created_at, blocks) "
                "VALUES (?, ?, ?, ?, ?)",
                [course_id, new_version, structure_id, _now(), json.dumps(blocks)],
            )
            conn.execute(
                "UPDATE active_versions SET published_version = ?, structure_id = ? WHERE course_id = ?",
                [new_version, cur.lastrowid, course_id],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new_version


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- the catalog ---------------------------------------------------------------

WORDS = (
    "algebra analysis atoms bridges circuits climate data design ecology energy ethics evolution "
    "finance forces genes geometry graphs history language learning light logic markets matter "
    "memory models music networks numbers oceans optics physics planets poetry power probability "
    "proofs rhetoric signals society software sound statistics systems theory thermodynamics "
    "vectors waves writing"
).split()
ORGS = ("MITx", "HarvardX", "BerkeleyX", "DelftX", "UQx", "EPFLx", "KyotoUx", "UBCx", "IITBx", "TsinghuaX")


def _title(rng: random.Random, n: int = 3) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def catalog(n_courses: int = 200) -> list:
    """The course ids :func:`seed` writes: ``n_courses`` ordinary courses
    plus :data:`LARGE_COURSE`."""
    ids = [f"course-v1:{ORGS[i % len(ORGS)]}+CS{100 + i:03d}+2025" for i in range(n_courses)]
    return [*ids, LARGE_COURSE]


def _course_blocks(rng: random.Random, course_id: str, shape: tuple, add_definition: Any) -> dict:
    """A split-style structure: ``{"root": id, id: {type, fields, children,
    definition}}``; ``shape`` is (sections, subsections, units, components)
    ranges."""
    org, number, run = course_id.split(":", 1)[1].split("+")
    blocks: dict = {}

    def block_id(kind: str) -> str:
        return f"block-v1:{org}+{number}+{run}+type@{kind}+block@{rng.getrandbits(128):032x}"

    def add(kind: str, fields: dict, children: list, content: dict) -> str:
        bid = block_id(kind)
        blocks[bid] = {
            "type": kind,
            "fields": fields,
            "children": children,
            "definition": add_definition(kind, content),
        }
        return bid

    start = datetime(2025, 1, 6, tzinfo=timezone.utc) + timedelta(days=7 * rng.randrange(40))
    sections = []
    week = 0
    for _s in range(rng.randint(*shape[0])):
        subsections = []
        for _q in range(rng.randint(*shape[1])):
            week += 1
            units = []
            for _u in range(rng.randint(*shape[2])):
                components = []
                for _c in range(rng.randint(*shape[3])):
                    kind = rng.choice(("html", "problem", "problem", "video"))
                    fields: dict = {"display_name": _title(rng, 2)}
                    if kind == "problem":
                        fields.update(weight=rng.choice((1, 2, 5)), max_attempts=rng.choice((1, 3, None)))
                    elif kind == "video":
                        fields.update(duration_s=rng.randrange(120, 1200))
                    components.append(add(kind, fields, [], {"data": _text(rng, 30)}))
                units.append(add("vertical", {"display_name": _title(rng, 2)}, components, {}))
            graded = rng.random() < 0.5
            fields = {
                "display_name": _title(rng),
                "graded": graded,
                "format": rng.choice(("Homework", "Lab", "Exam")) if graded else None,
                "due": (start + timedelta(days=7 * week)).isoformat() if graded else None,
            }
            subsections.append(add("sequential", fields, units, {"summary": _text(rng, 25)}))
        sections.append(
            add("chapter", {"display_name": _title(rng)}, subsections, {"summary": _text(rng, 25)})
        )
    root_fields = {
        "display_name": _title(rng, 4),
        "org": org,
        "number": number,
        "run": run,
        "start": start.isoformat(),
        "end": (start + timedelta(days=7 * (week + 2))).isoformat(),
        "pacing": rng.choice(("instructor", "self")),
        "language": rng.choice(("en", "en", "es", "fr", "zh")),
        "effort": f"{rng.randint(2, 10)} hours/week",
        "edited_on": _now(),
    }
    root = add(
        "course",
        root_fields,
        sections,
        {"overview": _text(rng, 60), "short_description": _text(rng, 18)},
    )
    blocks["root"] = root
    return blocks


def seed(path: str | Path, n_courses: int = 200, random_seed: int = 2025) -> list:
    """Writes a fresh modulestore at ``path``: ``n_courses`` courses of 40-90
    blocks, and :data:`LARGE_COURSE` with about 8,000 blocks (its outline is
    about 1.3 MiB of JSON). Deterministic for a given seed. Returns the
    course ids."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(random_seed)
    conn = sqlite3.connect(tmp)
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA journal_mode=WAL")
    definitions: list = []

    def add_definition(kind: str, content: dict) -> int:
        definitions.append((len(definitions) + 1, kind, json.dumps(content)))
        return len(definitions)

    ids = catalog(n_courses)
    for course_id in ids:
        if course_id == LARGE_COURSE:
            shape = ((26, 26), (12, 12), (5, 5), (4, 4))
        else:
            shape = ((4, 6), (3, 4), (1, 2), (1, 3))
        blocks = _course_blocks(rng, course_id, shape, add_definition)
        cur = conn.execute(
            "INSERT INTO structures (course_id, version, previous_id, created_at, blocks) VALUES (?, 1, NULL, ?, ?)",
            [course_id, _now(), json.dumps(blocks)],
        )
        conn.execute(
            "INSERT INTO active_versions (course_id, published_version, structure_id) VALUES (?, 1, ?)",
            [course_id, cur.lastrowid],
        )
    conn.executemany("INSERT INTO definitions (id, block_type, data) VALUES (?, ?, ?)", definitions)
    conn.commit()
    conn.close()
    tmp.replace(path)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return ids
