"""Building a package's distributions with `hatch build`, run in the
package's folder as a maintainer would (core's build hook,
core/hatch_build.py, compiles its .proto there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name


class BuildFailed(RuntimeError):
    pass


def hatch_command() -> list[str]:
    """hatch, from the interpreter running this script (hatch is one of
    dev.py's test tools; the release workflow installs it)."""
    return [sys.executable, "-m", "hatch"]


def hatch_build(
    folder: Path, out: Path, data_dir: Path, targets: tuple[str, ...] = ("wheel", "sdist")
) -> list[Path]:
    """`hatch build` of the package in `folder` into `out`; the files it wrote.

    hatch keeps an environment per project folder in its data directory:
    `data_dir` (a temporary one) keeps those of temporary folders from piling
    up in the user's."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    command = [*hatch_command(), "build", *(arg for target in targets for arg in ("-t", target)), str(out)]
    # No interactive prompts, no colours in the log.
    env = {**os.environ, "HATCH_INTERACTIVE": "0", "NO_COLOR": "1", "HATCH_DATA_DIR": str(data_dir)}
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BuildFailed(f"`hatch build` in {folder} failed:\n{done.stdout}{done.stderr}")
    return sorted(set(out.iterdir()) - before)


def wheel_of(files: list[Path], name: str) -> Path:
    stem = canonicalize_name(name).replace("-", "_")
    wheels = [file for file in files if file.suffix == ".whl" and file.name.startswith(f"{stem}-")]
    if len(wheels) != 1:
        raise BuildFailed(f"expected one wheel of {name}, got {[file.name for file in files]}")
    return wheels[0]
