"""Per-package releases (docs/releasing.md): hatch builds and bumps one
package at a time, scripts/release.py refuses what may not be released and
tags what may, and the compatibility test serves plugins against the core
versions of the repository's history.

Everything that changes files, commits or tags runs on a copy of the
checkout (checkout.py), with this checkout's scripts/release.py pointed at
it (`--root`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from .checkout import ROOT, commit_all, copy_checkout, date_changelog, git, release

sys.path.insert(0, str(ROOT / "scripts"))
from releasing import changelog, compat
from releasing.packages import find_packages, parse_tag, tomllib

PLUGIN_FOLDERS = sorted(path.parent for path in ROOT.glob("plugins/*/pyproject.toml"))
LIGHT_PLUGINS = ["core-sklearn", "core-xgboost", "core-lightgbm"]


@pytest.fixture(scope="module", autouse=True)
def hatch_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """hatch's environments of the copies' packages, in a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HATCH_DATA_DIR", str(tmp_path_factory.mktemp("hatch-data")))
        yield


def hatch(folder: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hatch", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HATCH_INTERACTIVE": "0"},
    )
    assert done.returncode == 0, f"hatch {' '.join(args)} in {folder} failed:\n{done.stdout}{done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_checkout(tmp_path / "repo")


def test_the_packages_are_core_and_every_plugin_each_with_its_hatch_version() -> None:
    packages = find_packages(ROOT)
    expected = {"core"} | {
        tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"] for folder in PLUGIN_FOLDERS
    }
    assert set(packages) == expected
    for package in packages.values():
        # hatch reads the version from the package's own version.py
        assert hatch(package.folder, "version") == package.version, package.name
        assert package.version_file.is_relative_to(package.folder)


def test_hatch_version_bumps_only_that_package(repo: Path) -> None:
    packages = find_packages(repo)
    sklearn, core = packages["core-sklearn"], packages["core"]
    old = sklearn.version
    hatch(sklearn.folder, "version", "minor")
    changed = git(repo, "status", "--porcelain").splitlines()
    assert changed == [" M plugins/sklearn/src/core_sklearn/version.py"], changed
    new = Version(find_packages(repo)["core-sklearn"].version)
    assert (new.major, new.minor, new.micro) == (Version(old).major, Version(old).minor + 1, 0)
    assert {name: p.version for name, p in find_packages(repo).items() if name != "core-sklearn"} == {
        name: p.version for name, p in packages.items() if name != "core-sklearn"
    }
    commit_all(repo, "core-sklearn: next minor")
    hatch(core.folder, "version", "patch")
    assert git(repo, "status", "--porcelain").splitlines() == [" M core/src/core/version.py"]


@pytest.mark.slow
def test_hatch_builds_every_package_on_its_own(repo: Path, tmp_path: Path) -> None:
    """`hatch build` in each package's folder: a wheel and an sdist of that
    package only; core's wheel has the stubs its build hook compiled."""
    import zipfile

    for package in find_packages(repo).values():
        out = tmp_path / package.name
        hatch(package.folder, "build", str(out))
        stem = f"{package.name.replace('-', '_')}-{package.version}"
        assert sorted(path.name for path in out.iterdir()) == [
            f"{stem}-py3-none-any.whl",
            f"{stem}.tar.gz",
        ], package.name
        if package.name == "core":
            with zipfile.ZipFile(out / f"{stem}-py3-none-any.whl") as wheel:
                names = set(wheel.namelist())
            assert {
                "core/grpc/generated/inference_pb2.py",
                "core/grpc/generated/inference_pb2_grpc.py",
            } <= names


CHANGELOG = """# Changelog of `core-acme`

## 0.3.0 (unreleased)

- Work in progress.

## 0.2.0 (2026-11-02)

- Released.

## 0.1.1

- Released without a date.

## 0.1.0 (soon)

- A note that is no date.

## 0.0.9 (2026-01-01)
"""


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("0.2.0", None),
        ("0.2", None),  # the same version, written shorter
        ("0.1.1", None),
        ("0.3.0", "`## 0.3.0 (unreleased)`: replace `(unreleased)` with the release date"),
        ("0.1.0", "`## 0.1.0 (soon)`: the note must be the release date"),
        ("0.0.9", "the `## 0.0.9` entry is empty"),
        ("0.4.0", "CHANGELOG.md has no `## 0.4.0` entry"),
    ],
)
def test_changelog_entry_rules(version: str, problem: str | None) -> None:
    problems = changelog.release_problems(CHANGELOG, version)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_every_package_changelog_has_an_entry_for_its_version() -> None:
    """Released or not yet, the version in version.py has its heading."""
    for package in find_packages(ROOT).values():
        versions = [entry.version for entry in changelog.entries(package.changelog.read_text())]
        assert package.version in versions, (package.name, versions)


def test_check_refuses_an_unreleased_changelog_entry_before_building(repo: Path) -> None:
    package = find_packages(repo)["core-sklearn"]
    text = package.changelog.read_text()
    if f"## {package.version} (unreleased)" not in text:  # the checkout is mid-release
        package.changelog.write_text(
            text.replace(f"## {package.version}", f"## {package.version} (unreleased)", 1)
        )
    done = release(repo, "check", "core-sklearn")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAILED   CHANGELOG.md: `## {package.version} (unreleased)`" in done.stdout, done.stdout
    assert "skipped  building, installing and serving" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith(f"release check refused: core-sklearn {package.version}")


def test_check_refuses_a_version_without_changelog_entry(repo: Path) -> None:
    hatch(repo / "plugins" / "xgboost", "version", "minor")
    version = find_packages(repo)["core-xgboost"].version
    done = release(repo, "check", "core-xgboost")
    assert done.returncode == 1
    assert f"FAILED   CHANGELOG.md has no `## {version}` entry" in done.stdout, done.stdout


def test_check_refuses_a_plugin_whose_core_range_excludes_core(repo: Path) -> None:
    """core moved on to its next minor; core-sklearn still says <0.2."""
    sklearn = find_packages(repo)["core-sklearn"]
    date_changelog(sklearn.folder, sklearn.version)
    hatch(repo / "core", "version", "minor")
    core_version = find_packages(repo)["core"].version
    (requirement,) = {str(r) for r in sklearn.core_requirements() if not r.extras}
    done = release(repo, "check", "core-sklearn")
    assert done.returncode == 1
    assert f"ok       CHANGELOG.md has a `## {sklearn.version}` entry" in done.stdout, done.stdout
    assert re.search(
        rf"FAILED   core-sklearn requires core\S+, which excludes this checkout's core {core_version}",
        done.stdout,
    ), (
        requirement,
        done.stdout,
    )


def test_check_refuses_a_range_its_readme_does_not_state(repo: Path) -> None:
    lightgbm = find_packages(repo)["core-lightgbm"]
    date_changelog(lightgbm.folder, lightgbm.version)
    pyproject = lightgbm.folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("<0.2", "<0.3"))
    done = release(repo, "check", "core-lightgbm")
    assert done.returncode == 1
    assert (
        "FAILED   README.md should say `Supports core>=0.1,<0.3` once; it says core>=0.1,<0.2" in done.stdout
    ), done.stdout


def test_release_tags_name_their_package() -> None:
    for package in find_packages(ROOT).values():
        assert parse_tag(package.tag) == (package.name, package.version)
        done = release(ROOT, "resolve-tag", package.tag)
        folder = package.folder.relative_to(ROOT).as_posix()
        assert done.stdout.splitlines() == [
            f"package={package.name}",
            f"folder={folder}",
            f"version={package.version}",
        ], done.stderr
    wrong_version = release(ROOT, "resolve-tag", "core-sklearn-v99.0.0")
    assert wrong_version.returncode == 1 and "says 99.0.0" in wrong_version.stdout
    for not_a_release in ("v0.1.0", "core-sklearn-0.1.0", "core-nothing-v0.1.0", "core-sklearn-vnext"):
        assert release(ROOT, "resolve-tag", not_a_release).returncode == 2, not_a_release


def test_tag_refuses_uncommitted_changes(repo: Path) -> None:
    sklearn = find_packages(repo)["core-sklearn"]
    date_changelog(sklearn.folder, sklearn.version)  # not committed
    done = release(repo, "tag", "core-sklearn")
    assert done.returncode == 1
    assert (
        done.stdout.strip() == "refused: core-sklearn has uncommitted changes: plugins/sklearn/CHANGELOG.md"
    )


@pytest.mark.slow
def test_tag_checks_serves_and_tags_a_plugin_release(repo: Path, tmp_path: Path) -> None:
    """The release commit of core-sklearn (its CHANGELOG dated), then `tag`:
    every check passes, the model is served from the wheel in an empty venv,
    and the tag marks HEAD. About a minute, most of it pip."""
    sklearn = find_packages(repo)["core-sklearn"]
    date_changelog(sklearn.folder, sklearn.version)
    head = commit_all(repo, f"core-sklearn {sklearn.version}")
    dist = tmp_path / "dist"
    done = release(repo, "tag", "core-sklearn", "--dist", str(dist))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:7]] == ["ok"] * 6, done.stdout
    assert "core-sklearn: core start served 'iris': ready, and its answer matched" in done.stdout
    assert f"tagged {sklearn.tag} at {head[:12]}" in done.stdout
    assert git(repo, "rev-parse", f"{sklearn.tag}^{{commit}}").strip() == head
    assert git(repo, "cat-file", "-t", sklearn.tag).strip() == "tag"  # annotated
    stem = f"core_sklearn-{sklearn.version}"
    assert sorted(path.name for path in dist.iterdir()) == [f"{stem}-py3-none-any.whl", f"{stem}.tar.gz"]

    again = release(repo, "tag", "core-sklearn")
    assert again.returncode == 1 and again.stdout.strip() == f"refused: tag {sklearn.tag} exists already"
    # A commit later, the version is taken: the next release needs a bump.
    (repo / "NOTES").write_text("after the release\n")
    commit_all(repo, "after the release")
    later = release(repo, "check", "core-sklearn")
    assert later.returncode == 1
    assert f"FAILED   tag {sklearn.tag} is another commit ({head[:12]})" in later.stdout, later.stdout


@pytest.mark.slow
def test_check_refuses_a_wheel_that_does_not_install_or_serve(repo: Path) -> None:
    """The served model is the README's: a README request the server does
    not answer (an output the runtime does not offer, although the estimator
    has it) fails the check, as does a dependency no index has."""
    sklearn = find_packages(repo)["core-sklearn"]
    date_changelog(sklearn.folder, sklearn.version)
    readme = sklearn.readme.read_text()
    outputs = '"outputs": [{"name": "predict"}, {"name": "predict_proba"}]'
    assert outputs in readme
    sklearn.readme.write_text(readme.replace(outputs, '"outputs": [{"name": "decision_function"}]'))
    done = release(repo, "check", "core-sklearn")
    assert done.returncode == 1
    assert "ok       installed with core" in done.stdout, done.stdout
    assert re.search(r"FAILED   infer answered 400: .*decision_function", done.stdout), done.stdout
    assert "--- core start's log ---" in done.stdout

    sklearn.readme.write_text(readme)
    pyproject = sklearn.folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"scikit-learn>=1.3"', '"scikit-learn>=999"'))
    done = release(repo, "check", "core-sklearn")
    assert done.returncode == 1
    assert re.search(r"FAILED   pip install .* failed", done.stdout), done.stdout


@pytest.mark.slow
def test_check_serves_core_alone(repo: Path) -> None:
    """core's own release: the README's Echo runtime, served from core's wheel."""
    core = find_packages(repo)["core"]
    date_changelog(core.folder, core.version)
    done = release(repo, "check", "core")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "core: core start served 'echo': ready, and its answer matched" in done.stdout


def bump_core(repo: Path, *versions: str) -> dict[str, str]:
    """Commit core's version moving to each of `versions`; their commits."""
    commits = {}
    for version in versions:
        hatch(repo / "core", "version", version)
        commits[version] = commit_all(repo, f"core {version}")
    return commits


def test_core_versions_come_from_the_history_and_tags(repo: Path) -> None:
    current = find_packages(repo)["core"].version
    before = git(repo, "rev-parse", "HEAD").strip()
    commits = bump_core(repo, "0.1.1", "0.2.0")
    # A tag stands for its version, wherever the history had it.
    git(repo, "tag", "--annotate", "core-v0.1.1", "--message", "core 0.1.1", f"{commits['0.1.1']}^")
    found = {v.version: v for v in compat.history_versions(repo)}
    assert list(found) == sorted({current, "0.1.1", "0.2.0"}, key=Version)
    assert found[current].commit == before  # the last commit at that version
    assert found["0.1.1"].commit == before and found["0.1.1"].source == "tag core-v0.1.1"
    assert found["0.2.0"].commit == commits["0.2.0"]

    packages = find_packages(repo)
    pyproject = packages["core-mlflow"].folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(">=0.1,<0.2", ">=0.3,<0.4"))
    plugins = [find_packages(repo)[name] for name in ("core-sklearn", "core-mlflow")]
    runs, problems = compat.plan(plugins, list(found.values()))
    assert {chosen.version: [p.name for p in admitting] for chosen, admitting in runs.items()} == {
        current: ["core-sklearn"],
        "0.1.1": ["core-sklearn"],
    }
    assert problems == ["core-mlflow: no core version in the history is in core>=0.3,<0.4"]


def test_the_package_index_is_no_source_of_core_versions() -> None:
    """`core` on the index is not this project: whatever pip finds there
    (nothing, here) is reported and never planned."""
    listed, reason = compat.index_versions()
    history = {v.version for v in compat.history_versions(ROOT)}
    assert listed or reason, "pip said nothing"
    runs, _ = compat.plan([find_packages(ROOT)["core-sklearn"]], compat.history_versions(ROOT))
    assert {chosen.version for chosen in runs} <= history


@pytest.mark.slow
def test_compat_serves_light_plugins_with_lowest_and_highest_core(repo: Path) -> None:
    """core moves on to 0.1.1, then 0.2.0: the light plugins (core>=0.1,<0.2)
    are served against core built from the commit of 0.1.0 and of 0.1.1,
    one venv for each, and 0.2.0 is not tried. Two to three minutes."""
    current = find_packages(repo)["core"].version
    assert Version(current) < Version("0.1.1"), "pick later versions for this test"
    bump_core(repo, "0.1.1", "0.2.0")
    done = release(repo, "compat", *LIGHT_PLUGINS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(
        r"core versions in the history: 0\.1\.0 \(\w+, the last commit at 0\.1\.0\), 0\.1\.1", done.stdout
    )
    assert "package index: " in done.stdout
    for version in (current, "0.1.1"):
        for plugin in LIGHT_PLUGINS:
            assert re.search(
                rf"ok +core {re.escape(version)} \(.*\): {plugin}: core start served", done.stdout
            ), (
                version,
                plugin,
                done.stdout,
            )
    assert "core 0.2.0 (" not in done.stdout
