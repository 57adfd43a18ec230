"""The git commands a release needs: tags, a clean tree, a file's history,
and a past commit's files."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def tag_commit(root: Path, tag: str) -> str | None:
    """The commit `tag` points at; None when there is no such tag."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


def tags(root: Path, pattern: str) -> list[str]:
    return git(root, "tag", "--list", pattern).split()


def uncommitted(root: Path, folder: Path) -> list[str]:
    """The files under `folder` that differ from HEAD (modified, added,
    deleted or untracked and not ignored)."""
    output = git(root, "status", "--porcelain", "--untracked-files=all", "--", str(folder))
    return [line[3:] for line in output.splitlines()]


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def create_tag(root: Path, tag: str, message: str) -> None:
    git(root, "tag", "--annotate", tag, "--message", message)


def first_parent_changes(root: Path, path: str) -> list[tuple[str, str]]:
    """(commit, text of `path` after it) for each commit on HEAD's
    first-parent line that changed `path`, newest first (its diffs, as
    `git log -p` shows them, are not needed: the file is read whole)."""
    commits = git(root, "log", "--first-parent", "--format=%H", "HEAD", "--", path).split()
    return [(commit, git(root, "show", f"{commit}:{path}")) for commit in commits]


def first_parent(root: Path, commit: str) -> str:
    return git(root, "rev-parse", f"{commit}^1").strip()


def export(root: Path, commit: str, path: str, destination: Path) -> Path:
    """The files of `path` at `commit`, written under `destination` (as
    `git archive` packs them); the exported `path`."""
    done = subprocess.run(
        ["git", "archive", "--format=tar", commit, "--", path], cwd=root, capture_output=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"git archive {commit} {path} failed: {done.stderr.decode(errors='replace')}")
    archive = done.stdout
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination / path
