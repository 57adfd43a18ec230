"""The release check of one package: what must hold before its tag is made.

Cheap checks first (CHANGELOG entry, tag not taken, the plugin's `core`
range), then, only if they pass, the expensive one: build the package with
`hatch build`, install its wheel into an empty venv (a plugin's with core's
wheel built from this checkout), and serve the package's tiny model with
`core start` (serve_smoke.py)."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet

from . import building, changelog, gitrepo, venvs
from .packages import CORE, Package, find_packages

# The sentence each plugin's README ends with: "Supports `core>=0.1,<0.2`."
README_RANGE = re.compile(r"Supports `core([^`]*)`")


@dataclass
class Report:
    """What was checked, in order: (mark, what), mark one of ok, FAILED, skipped."""

    title: str
    results: list[tuple[str, str]] = field(default_factory=list)

    def add(self, passed: bool, what: str) -> None:
        self.results.append(("ok" if passed else "FAILED", what))

    def skip(self, what: str) -> None:
        self.results.append(("skipped", what))

    @property
    def passed(self) -> bool:
        return all(mark != "FAILED" for mark, _ in self.results)

    def render(self) -> str:
        lines = [self.title]
        for mark, what in self.results:
            indented = what.replace("\n", "\n" + " " * 11)
            lines.append(f"  {mark:7}  {indented}")
        return "\n".join(lines)


def show(specifier: SpecifierSet) -> str:
    """A range as people write it, lower bound first: >=0.1,<0.2."""
    return ",".join(sorted(map(str, specifier), key=lambda spec: (not spec.startswith(">"), spec)))


def core_range(package: Package) -> tuple[SpecifierSet | None, list[str]]:
    """The `core` range a plugin admits, and what is wrong with how it says so.

    Every requirement on core (the dependency, and each extra's
    `core[pandas]>=...`) must state the same range, bounded above."""
    requirements = package.core_requirements()
    if not requirements:
        return None, [f"{package.name} does not depend on core"]
    specifiers = {str(r.specifier) for r in requirements}
    if len(specifiers) > 1:
        return None, [f"{package.name} states different core ranges: {', '.join(sorted(specifiers))}"]
    specifier = requirements[0].specifier
    problems = []
    if not any(spec.operator in ("<", "<=", "~=", "==") for spec in specifier):
        problems.append(
            f"core{show(specifier)} has no upper bound: a plugin names the core versions it was tested with"
        )
    return specifier, problems


def static_checks(root: Path, package: Package, report: Report) -> None:
    problems = changelog.release_problems(package.changelog.read_text(), package.version)
    report.add(not problems, "\n".join(problems) or f"CHANGELOG.md has a `## {package.version}` entry")

    # The release workflow runs on the tag itself: a tag at HEAD is this release.
    commit = gitrepo.tag_commit(root, package.tag)
    if commit is None:
        report.add(True, f"tag {package.tag} is free")
    elif commit == gitrepo.head(root):
        report.add(True, f"tag {package.tag} is this commit")
    else:
        report.add(
            False, f"tag {package.tag} is another commit ({commit[:12]}): bump the version (hatch version)"
        )

    if not package.is_plugin:
        return
    core_version = find_packages(root)[CORE].version
    specifier, problems = core_range(package)
    if specifier is not None:
        if not specifier.contains(core_version, prereleases=True):
            problems.append(
                f"{package.name} requires core{show(specifier)}, "
                f"which excludes this checkout's core {core_version}"
            )
        stated = README_RANGE.findall(package.readme.read_text())
        if [SpecifierSet(text) for text in stated] != [specifier]:
            problems.append(
                f"README.md should say `Supports core{show(specifier)}` once; "
                f"it says {', '.join(f'core{text}' for text in stated) or 'nothing'}"
            )
    report.add(
        not problems,
        "\n".join(problems) or f"core{show(specifier)} admits core {core_version} (README agrees)",
    )


def install_and_serve(root: Path, package: Package, dist: Path, workdir: Path, report: Report) -> None:
    """Build the package into `dist`, install its wheel (and, for a plugin,
    the wheel of this checkout's core) into an empty venv and serve its model."""
    try:
        built = building.hatch_build(package.folder, dist, workdir / "hatch")
        wheels = [building.wheel_of(built, package.name)]
        report.add(True, f"hatch build: {', '.join(path.name for path in built)}")
        if package.is_plugin:
            core = find_packages(root)[CORE]
            core_files = building.hatch_build(
                core.folder, workdir / "core-dist", workdir / "hatch", ("wheel",)
            )
            wheels.append(building.wheel_of(core_files, CORE))
        python = venvs.create(workdir / "venv")
        venvs.pip_install(python, *wheels)
    except (building.BuildFailed, venvs.InstallFailed) as error:
        report.add(False, str(error))
        return
    partner = f" with core {wheels[1].name.split('-')[1]} (built from core/)" if package.is_plugin else ""
    report.add(True, f"installed{partner} into an empty venv")
    passed, output = venvs.serve_check(python, package.name, package.readme, workdir / "serve")
    report.add(passed, output)


def check(root: Path, package: Package, dist: Path | None = None) -> Report:
    """Every check of `package`'s release; the wheel and sdist are left in
    `dist` (a temporary folder when None)."""
    report = Report(f"{package.name} {package.version} ({package.folder.relative_to(root).as_posix()})")
    static_checks(root, package, report)
    if not report.passed:
        report.skip("building, installing and serving: fix the above first")
        return report
    with tempfile.TemporaryDirectory(prefix=f"release-{package.name}-") as scratch:
        workdir = Path(scratch)
        install_and_serve(root, package, dist or workdir / "dist", workdir, report)
    return report
