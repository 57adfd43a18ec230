"""The repository's automation (docs/releasing.md): the pre-commit hooks run
for real, offline from GitHub (all `repo: local`), the GitHub Actions
workflows pass actionlint, the release workflow's tags reach every package,
and CI runs the README's test command."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .checkout import ROOT, copy_checkout, release

sys.path.insert(0, str(ROOT / "scripts"))
from releasing.packages import find_packages

BIN = Path(sys.executable).parent
WORKFLOWS = ROOT / ".github" / "workflows"
HOOKS = {"ruff", "ruff-format", "mypy", "hadolint"}


def load_workflow(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def pre_commit(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never", "NO_COLOR": "1"}
    return subprocess.run(
        [str(BIN / "pre-commit"), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's own store (the hooks' environments), new for this module."""
    return tmp_path_factory.mktemp("pre-commit-home")


def test_pre_commit_config_is_valid_and_local(tmp_path: Path) -> None:
    done = pre_commit(ROOT, tmp_path, "validate-config", ".pre-commit-config.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    # No hook repository to clone from GitHub.
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert set(hooks) == HOOKS
    # The Python tools are pinned, so every checkout runs the same ones.
    for hook in hooks.values():
        if hook["language"] == "python":
            assert all("==" in dependency for dependency in hook["additional_dependencies"]), hook


@pytest.mark.slow
def test_pre_commit_runs_every_hook_on_the_checkout(tmp_path: Path, pre_commit_home: Path) -> None:
    """`pre-commit run --all-files` on a copy of the checkout (ruff format
    rewrites files it would change; the checkout is left alone), with
    pre-commit's store new: ruff and hadolint are installed from PyPI, mypy
    is this venv's. Every hook has files to check, and passes."""
    repo = copy_checkout(tmp_path / "repo")
    (repo / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    # mypy needs protoc's output (not in git); its cache only saves time.
    generated = ROOT / "core" / "src" / "core" / "grpc" / "generated"
    shutil.copytree(generated, repo / generated.relative_to(ROOT))
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", repo / ".mypy_cache")
    done = pre_commit(repo, pre_commit_home, "run", "--all-files", "--show-diff-on-failure")
    assert done.returncode == 0, done.stdout + done.stderr
    results = dict(re.findall(r"^(.+?)\.{3,}(Passed|Failed|Skipped.*)$", done.stdout, flags=re.M))
    assert results == {
        "ruff check": "Passed",
        "ruff format": "Passed",
        "mypy (core)": "Passed",
        "hadolint (Dockerfiles)": "Passed",
    }, done.stdout


@pytest.mark.slow
def test_hadolint_and_ruff_hooks_catch_what_they_are_for(tmp_path: Path, pre_commit_home: Path) -> None:
    """The same hooks in a small repository of their own (no .hadolint.yaml,
    no ruff settings): an untagged base image and an unused import fail."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "--quiet"], cwd=repo, check=True)
    shutil.copy(ROOT / ".pre-commit-config.yaml", repo)
    (repo / "Dockerfile").write_text("FROM python\nRUN pip install numpy\n")
    (repo / "module.py").write_text("import os\n")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    hadolint = pre_commit(repo, pre_commit_home, "run", "hadolint", "--files", "Dockerfile")
    assert hadolint.returncode == 1, hadolint.stdout + hadolint.stderr
    assert "DL3006" in hadolint.stdout, hadolint.stdout  # always tag the version of an image
    ruff = pre_commit(repo, pre_commit_home, "run", "ruff", "--files", "module.py")
    assert ruff.returncode == 1 and "F401" in ruff.stdout, ruff.stdout


def test_workflows_pass_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert {path.name for path in workflows} == {"ci.yml", "image.yml", "release.yml"}
    done = subprocess.run(
        [str(BIN / "actionlint"), *map(str, workflows)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_release_workflow_tags_reach_every_package() -> None:
    """Each package's tag triggers the release workflow (GitHub's tag
    filters are globs), and `release.py resolve-tag` maps it to the package's
    folder; tags of no package are refused there."""
    workflow = load_workflow("release.yml")
    patterns = workflow["on"]["push"]["tags"]
    for package in find_packages(ROOT).values():
        assert any(fnmatch.fnmatchcase(package.tag, pattern) for pattern in patterns), (package.tag, patterns)
        resolved = release(ROOT, "resolve-tag", package.tag)
        assert f"folder={package.folder.relative_to(ROOT).as_posix()}" in resolved.stdout.splitlines()
    for tag in ("core-nothing-v0.1.0", "core-sklearn-vnext"):
        assert any(fnmatch.fnmatchcase(tag, pattern) for pattern in patterns)
        assert release(ROOT, "resolve-tag", tag).returncode != 0, tag
    assert not any(fnmatch.fnmatchcase("v0.1.0", pattern) for pattern in patterns)


def test_release_workflow_checks_then_publishes_with_trusted_publishing() -> None:
    jobs = load_workflow("release.yml")["jobs"]
    build_steps = [step.get("run", "") for step in jobs["build"]["steps"]]
    assert any("scripts/release.py resolve-tag" in run for run in build_steps)
    assert any('scripts/release.py check "$PACKAGE" --dist dist' in run for run in build_steps)
    assert any('scripts/release.py compat "$PACKAGE"' in run for run in build_steps)
    publish = jobs["publish"]
    assert publish["needs"] == "build"
    assert publish["permissions"] == {"id-token": "write"}
    uses = [step.get("uses", "") for step in publish["steps"]]
    assert any(use.startswith("pypa/gh-action-pypi-publish@") for use in uses), uses
    # No API token: trusted publishing.
    assert "password" not in str(publish)


def test_ci_runs_the_readme_test_command() -> None:
    """The README's test command is what .ci/run runs, and what the CI
    workflow's full job runs (on 3.11; lint and unit tests on 3.10-3.12)."""
    readme = (ROOT / "README.md").read_text()
    (command,) = re.findall(r"^(python3 dev\.py test)\b", readme, flags=re.M)
    script = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert script == [f"exec {command}"], script
    jobs = load_workflow("ci.yml")["jobs"]
    assert [step.get("run") for step in jobs["full"]["steps"] if "run" in step] == ["bash .ci/run"]
    python = [
        step["with"]["python-version"]
        for step in jobs["full"]["steps"]
        if "setup-python" in step.get("uses", "")
    ]
    assert python == ["3.11"]
    for job in ("lint", "unit"):
        assert jobs[job]["strategy"]["matrix"]["python"] == ["3.10", "3.11", "3.12"], job
    assert any("pre-commit run --all-files" in step.get("run", "") for step in jobs["lint"]["steps"])


def test_image_workflow_builds_the_repository_dockerfile() -> None:
    steps = load_workflow("image.yml")["jobs"]["image"]["steps"]
    (build,) = [step for step in steps if step.get("uses", "").startswith("docker/build-push-action@")]
    assert (ROOT / build["with"]["file"]).is_file(), build["with"]["file"]
    assert build["with"]["push"] == "${{ github.event_name != 'pull_request' }}"
