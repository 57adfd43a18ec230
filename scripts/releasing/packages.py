"""The packages of this repository as a release sees them: `core` in core/
and each plugin in plugins/*, each with its pyproject.toml, its version.py
(hatch reads the version from the file [tool.hatch.version] names),
CHANGELOG.md and README.md, released under tags `NAME-vVERSION`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CORE = "core"
VERSION_LINE = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.M)
# core-sklearn-v0.2.0, core-v0.1.0, core-alibi-detect-v0.1.0: the name is
# the shortest prefix followed by "-v" and a digit.
TAG = re.compile(r"^(?P<name>core(?:-[a-z0-9]+)*?)-v(?P<version>\d[0-9A-Za-z.+!-]*)$")


class UnknownPackage(LookupError):
    pass


@dataclass(frozen=True)
class Package:
    name: str  # the distribution: core, core-sklearn, ...
    folder: Path  # holds its pyproject.toml
    project: dict[str, Any] = field(compare=False, repr=False)  # pyproject.toml, parsed

    @property
    def version_file(self) -> Path:
        return self.folder / self.project["tool"]["hatch"]["version"]["path"]

    @property
    def version(self) -> str:
        return read_version(self.version_file.read_text(), self.version_file)

    @property
    def tag(self) -> str:
        return tag_name(self.name, self.version)

    @property
    def changelog(self) -> Path:
        return self.folder / "CHANGELOG.md"

    @property
    def readme(self) -> Path:
        return self.folder / "README.md"

    @property
    def is_plugin(self) -> bool:
        return self.name != CORE

    def core_requirements(self) -> list[Requirement]:
        """Every requirement on `core`, in the dependencies and the extras."""
        project = self.project["project"]
        lines = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            lines.extend(extra)
        requirements = [Requirement(line) for line in lines]
        return [r for r in requirements if canonicalize_name(r.name) == CORE]


def read_version(text: str, where: Path | str) -> str:
    match = VERSION_LINE.search(text)
    if match is None:
        raise ValueError(f"{where}: no __version__ line")
    return match.group(1)


def tag_name(name: str, version: str) -> str:
    return f"{name}-v{version}"


def parse_tag(tag: str) -> tuple[str, str]:
    """(package name, version) of a release tag; ValueError for any other tag."""
    match = TAG.match(tag)
    if match is None:
        raise ValueError(f"{tag!r} is not a release tag (NAME-vVERSION, e.g. core-sklearn-v0.2.0)")
    Version(match["version"])  # raises InvalidVersion for nonsense
    return match["name"], match["version"]


def find_packages(root: Path) -> dict[str, Package]:
    """core first, then the plugins in folder order, by distribution name."""
    pyprojects = [root / "core" / "pyproject.toml", *sorted(root.glob("plugins/*/pyproject.toml"))]
    packages: dict[str, Package] = {}
    for pyproject in pyprojects:
        project = tomllib.loads(pyproject.read_text())
        name = canonicalize_name(project["project"]["name"])
        packages[name] = Package(name, pyproject.parent, project)
    return packages


def get_package(root: Path, name: str) -> Package:
    packages = find_packages(root)
    try:
        return packages[canonicalize_name(name)]
    except KeyError:
        raise UnknownPackage(f"no package {name!r}; there are: {', '.join(packages)}") from None
