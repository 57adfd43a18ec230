"""Copies of this checkout for the release and automation tests, which
change files, commit and tag: never in the checkout itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "scripts" / "release.py"
IDENTITY = {"user.name": "release test", "user.email": "release-test@example.invalid"}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    if git(repo, "status", "--porcelain"):
        git(repo, "commit", "--quiet", "--no-verify", "--message", message)
    return git(repo, "rev-parse", "HEAD").strip()


def copy_checkout(destination: Path) -> Path:
    """A git repository at `destination` holding this checkout as it is now:
    its history (a local clone) and, committed on top of it, the working
    tree's changes (tracked files, and untracked ones that are not ignored)."""
    git(ROOT, "clone", "--quiet", str(ROOT), str(destination))
    for key, value in IDENTITY.items():
        git(destination, "config", key, value)
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source, target = ROOT / name, destination / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.is_file():
            target.unlink()  # deleted in the working tree
    commit_all(destination, "the working tree")
    return destination


def release(repo: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """scripts/release.py (this checkout's) run on the repository `repo`."""
    command = [sys.executable, str(RELEASE), "--root", str(repo), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def date_changelog(package_folder: Path, version: str, date: str = "2026-12-07") -> None:
    """The release commit's edit: `## VERSION (unreleased)` -> `## VERSION (DATE)`."""
    changelog = package_folder / "CHANGELOG.md"
    text = changelog.read_text()
    heading = f"## {version} (unreleased)"
    assert heading in text, f"{changelog}: no {heading!r}"
    changelog.write_text(text.replace(heading, f"## {version} ({date})", 1))
