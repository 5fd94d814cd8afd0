"""Checks the links of every Markdown file in the repository: a relative link
must name a file or folder inside the repository (nothing like
``../shared/DESIGN.md`` that only exists on one machine), a ``#fragment``
into a Markdown file must match one of its headings, and no link points at a
package registry's web pages (link the project's repository or documentation
instead). Run at the start of scripts/test.sh.

Usage: python3 scripts/check_links.py     (prints each broken link; exit 1)

Example: ``[design](docs/design.md#hosts)`` in README.md passes when
docs/design.md has a heading "Hosts".
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(
    r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)|<(https?://[^>\s]+)>"
)
REGISTRIES = ("pypi.org", "www.npmjs.com", "npmjs.com", "crates.io", "lib.rs")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (outside code blocks)."""
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def markdown_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / p for p in out.split() if "node_modules" not in p and (ROOT / p).exists()]


def problems(path: Path) -> list[str]:
    """The broken links of one Markdown file, as `file:line: message`."""
    out, fenced = [], False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        for m in LINK.finditer(line):
            target = next(g for g in m.groups() if g)
            where = f"{path.relative_to(ROOT)}:{n}"
            if re.match(r"[a-z]+:", target):
                host = re.sub(r"^[a-z]+://([^/]+).*", r"\1", target)
                if host in REGISTRIES:
                    out.append(f"{where}: {target} is a package registry's page; link the project instead")
                continue
            file_part, _, fragment = target.partition("#")
            dest = (path.parent / unquote(file_part)).resolve() if file_part else path
            if ROOT not in dest.parents and dest != ROOT:
                out.append(f"{where}: {target} leaves the repository")
            elif not dest.exists():
                out.append(f"{where}: {target} does not exist")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                out.append(f"{where}: {target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    return out


def main() -> int:
    found = [p for f in markdown_files() for p in problems(f)]
    for p in found:
        print(p, file=sys.stderr)
    print(f"links: {len(found)} broken" if found else "links: all resolve inside the repository")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
