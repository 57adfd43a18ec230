"""Plugins against the oldest and newest core their `core` range admits.

The core versions are this repository's own, read from its history: each
release tag `core-vX.Y.Z` (the released code), and each version that
core/src/core/version.py has held on HEAD's first-parent line (the last
commit at that version stands for it: a version's final state is what was,
or would have been, released). The package index is not a source: the
`core` name there is not this project (pip finds no such project, or an
unrelated one), so `pip index versions core` is only reported.

For each core version some plugin needs, core is exported from its commit
(`git archive`), built with `hatch build`, and installed with the wheels of
the plugins that admit it (built from the checkout) into an empty venv,
where each plugin serves its tiny model (serve_smoke.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from . import building, gitrepo, venvs
from .checks import Report, core_range, show
from .packages import CORE, Package, find_packages, parse_tag, read_version


@dataclass(frozen=True)
class CoreVersion:
    version: str
    commit: str
    source: str  # how the commit was found, for the report


def history_versions(root: Path) -> list[CoreVersion]:
    """Every core version in the repository's history, oldest first."""
    core = find_packages(root)[CORE]
    path = core.version_file.relative_to(root).as_posix()
    found: dict[str, CoreVersion] = {}
    replaced_by: str | None = None  # the (newer) commit that changed the version after this one
    for commit, text in gitrepo.first_parent_changes(root, path):
        version = read_version(text, f"{commit[:12]}:{path}")
        last = gitrepo.head(root) if replaced_by is None else gitrepo.first_parent(root, replaced_by)
        # Newest first: a version seen again further back was held before, and left.
        found.setdefault(version, CoreVersion(version, last, f"{last[:12]}, the last commit at {version}"))
        replaced_by = commit
    for tag in gitrepo.tags(root, "core-v*"):
        name, version = parse_tag(tag)
        commit = gitrepo.tag_commit(root, tag)
        if name == CORE and commit is not None:
            found[version] = CoreVersion(version, commit, f"tag {tag}")
    return sorted(found.values(), key=lambda found_version: Version(found_version.version))


def index_versions(name: str = CORE) -> tuple[list[str], str]:
    """What `pip index versions NAME` lists, and pip's words when it lists nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", name],
        capture_output=True,
        text=True,
        env=venvs.CLEAN_ENV,
        timeout=120,
    )
    match = re.search(r"^Available versions: (.+)$", done.stdout, re.M)
    if match:
        return [version.strip() for version in match.group(1).split(",")], ""
    return [], (done.stderr.strip().splitlines() or ["no answer"])[-1]


def plan(
    plugins: list[Package], versions: list[CoreVersion]
) -> tuple[dict[CoreVersion, list[Package]], list[str]]:
    """Which plugins run against which core version (each plugin against the
    lowest and the highest it admits), and the plugins no version suits."""
    runs: dict[CoreVersion, list[Package]] = {}
    problems = []
    for plugin in plugins:
        specifier, range_problems = core_range(plugin)
        problems.extend(range_problems)
        if specifier is None:
            continue
        admitted = [v for v in versions if specifier.contains(v.version, prereleases=True)]
        if not admitted:
            problems.append(f"{plugin.name}: no core version in the history is in core{show(specifier)}")
            continue
        for chosen in dict.fromkeys([admitted[0], admitted[-1]]):
            runs.setdefault(chosen, []).append(plugin)
    ordered = sorted(runs, key=lambda chosen: Version(chosen.version))
    return {chosen: runs[chosen] for chosen in ordered}, problems


def run(root: Path, plugins: list[Package], workdir: Path) -> Report:
    report = Report(f"compatibility of {', '.join(p.name for p in plugins)} with core's history")
    versions = history_versions(root)
    report.add(
        True, "core versions in the history: " + ", ".join(f"{v.version} ({v.source})" for v in versions)
    )
    listed, reason = index_versions()
    if listed:
        index = f"package index: `core` {', '.join(listed)}: not this project's releases, ignored"
    else:
        index = f"package index: no `core` ({reason})"
    report.add(True, index)
    runs, problems = plan(plugins, versions)
    for problem in problems:
        report.add(False, problem)
    if not runs:
        return report
    plugin_wheels = {}
    try:
        for plugin in dict.fromkeys(p for chosen in runs.values() for p in chosen):
            built = building.hatch_build(
                plugin.folder, workdir / "plugin-dist", workdir / "hatch", ("wheel",)
            )
            plugin_wheels[plugin.name] = building.wheel_of(built, plugin.name)
    except building.BuildFailed as error:
        report.add(False, str(error))
        return report
    core_path = find_packages(root)[CORE].folder.relative_to(root).as_posix()
    for chosen, admitting in runs.items():
        names = ", ".join(plugin.name for plugin in admitting)
        folder = workdir / f"core-{chosen.version}"
        try:
            source = gitrepo.export(root, chosen.commit, core_path, folder / "source")
            built = building.hatch_build(source, folder / "dist", workdir / "hatch", ("wheel",))
            core_wheel = building.wheel_of(built, CORE)
            python = venvs.create(folder / "venv")
            venvs.pip_install(python, core_wheel, *(plugin_wheels[plugin.name] for plugin in admitting))
        except (building.BuildFailed, venvs.InstallFailed, RuntimeError) as error:
            report.add(False, f"core {chosen.version} ({chosen.source}) with {names}: {error}")
            continue
        for plugin in admitting:
            passed, output = venvs.serve_check(python, plugin.name, plugin.readme, folder / plugin.name)
            report.add(passed, f"core {chosen.version} ({chosen.source}): {output}")
    return report
