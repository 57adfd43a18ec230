"""A package's CHANGELOG.md as a release reads it: one `## VERSION` heading
per version, newest first, optionally followed by a note in parentheses.

While a version is being worked on its heading says `## 0.2.0 (unreleased)`;
the release commit replaces the note with the release date,
`## 0.2.0 (2026-12-07)` (or drops it). A version whose entry is missing,
empty, or still marked unreleased is not released."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

HEADING = re.compile(r"^## +(?P<version>[^\s(]+)(?: +\((?P<note>[^)]*)\))? *$", re.M)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Entry:
    version: str
    note: str | None  # "unreleased", a date, or None
    body: str


def entries(text: str) -> list[Entry]:
    headings = list(HEADING.finditer(text))
    found = []
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        end = following.start() if following else len(text)
        found.append(Entry(heading["version"], heading["note"], text[heading.end() : end].strip()))
    return found


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def release_problems(text: str, version: str) -> list[str]:
    """Why CHANGELOG.md `text` does not allow releasing `version` (none: it does)."""
    entry = next((e for e in entries(text) if _same_version(e.version, version)), None)
    if entry is None:
        return [f"CHANGELOG.md has no `## {version}` entry"]
    problems = []
    if entry.note is not None and entry.note.strip().lower() == "unreleased":
        problems.append(
            f"CHANGELOG.md: `## {entry.version} (unreleased)`: "
            "replace `(unreleased)` with the release date, `(YYYY-MM-DD)`"
        )
    elif entry.note is not None and not DATE.match(entry.note.strip()):
        problems.append(
            f"CHANGELOG.md: `## {entry.version} ({entry.note})`: "
            "the note must be the release date, YYYY-MM-DD"
        )
    if not entry.body:
        problems.append(f"CHANGELOG.md: the `## {entry.version}` entry is empty")
    return problems
