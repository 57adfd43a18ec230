"""Custom environments (docs/environments.md): a model with
`parameters.environment_tarball` (a venv-pack or conda-pack tarball) or
`parameters.environment_path` (an environment folder) runs in workers
started with that environment's Python; models with the same environment
(`Environment.key`) share them.

A tarball is unpacked once into `environments_dir`, in a folder named by its
sha256, through a temporary folder renamed into place, and trusted only once
READY_MARKER is written in it, last. Unsafe members are refused
(`tarballs`); venv's interpreter links to the packing machine's Python are
made anew to this machine's. conda-pack's `conda-unpack` runs in place.
Preparing takes seconds: `prepare_environment` blocks,
`prepare_environment_async` runs it in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ConfigurationError, ModelLoadError
from ..settings import ModelSettings
from ..version import __version__
from .tarballs import check_links_stay_inside, extract

logger = logging.getLogger(__name__)

# Written last into an unpacked environment: only folders holding it are used.
READY_MARKER = ".core-environment.json"
# Run in the environment's Python: its version first, so that it is known
# even when `import core` then fails.
_CHECK_SCRIPT = (
    "import sys; print('%d.%d.%d' % sys.version_info[:3], flush=True); import core; print(core.__version__)"
)
_CHECK_TIMEOUT = 120.0
_CONDA_UNPACK_TIMEOUT = 600.0


@dataclass(frozen=True)
class Environment:
    """A prepared environment: a folder with a Python that can import `core`."""

    # Identity: the environment's folder, resolved. Models with the same key
    # share a worker pool.
    key: str
    root: Path
    # The interpreter to start workers with. Inside `root`, not resolved: a
    # venv's Python only knows its venv when started by its venv path.
    python: Path
    python_version: str
    # The version of `core` installed in the environment (the worker's side).
    core_version: str
    # The tarball's sha256 (the name of its folder), None for environment_path.
    sha256: str | None = None

    def variables(self, base: Mapping[str, str]) -> dict[str, str]:
        """Process environment of a worker: `base` with the environment's
        scripts first on PATH, VIRTUAL_ENV (venv) or CONDA_PREFIX (conda) set,
        and without PYTHONHOME and PYTHONPATH, which would make the
        environment's Python use the server's packages."""
        variables = {k: v for k, v in base.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
        scripts = str(self.python.parent)
        path = variables.get("PATH")
        variables["PATH"] = scripts + os.pathsep + path if path else scripts
        if (self.root / "pyvenv.cfg").is_file():
            variables["VIRTUAL_ENV"] = str(self.root)
        elif (self.root / "conda-meta").is_dir():
            variables["CONDA_PREFIX"] = str(self.root)
        return variables


def prepare_environment(
    settings: ModelSettings, environments_dir: str | os.PathLike[str]
) -> Environment | None:
    """The model's custom environment, unpacked and checked; None when it has
    none. Relative paths resolve against the folder of model-settings.json;
    tarballs unpack into `environments_dir` (made when missing). Blocks for
    seconds: call it in a thread (`prepare_environment_async`).

    Raises ConfigurationError for settings that cannot be used (both fields
    set, a path that is not there) and ModelLoadError for an environment that
    cannot be (an unsafe or broken tarball, no Python, no `core` in it)."""
    tarball = settings.parameters.environment_tarball
    folder = settings.parameters.environment_path
    if not tarball and not folder:
        return None
    label = _model_label(settings)
    if tarball and folder:
        raise ConfigurationError(
            f"{label}: parameters.environment_tarball and parameters.environment_path are both set; "
            "set one of them"
        )
    if folder:
        root = _resolve(settings, folder)
        if not root.is_dir():
            raise ConfigurationError(f"{label}: parameters.environment_path {root} is not a folder")
        return _inspect(root, f"{label}: environment {root}")
    assert tarball is not None
    source = _resolve(settings, tarball)
    if not source.is_file():
        raise ConfigurationError(f"{label}: parameters.environment_tarball {source} is not a file")
    return _unpack_once(source, Path(environments_dir), f"{label}: environment tarball {source}")


async def prepare_environment_async(
    settings: ModelSettings, environments_dir: str | os.PathLike[str]
) -> Environment | None:
    """`prepare_environment` in a thread, so the event loop keeps serving."""
    parameters = settings.parameters
    if not parameters.environment_tarball and not parameters.environment_path:
        return None
    return await asyncio.to_thread(prepare_environment, settings, environments_dir)


def _model_label(settings: ModelSettings) -> str:
    label = f"model '{settings.name}'"
    return f"{label} version '{settings.version}'" if settings.version else label


def _resolve(settings: ModelSettings, value: str) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else settings.folder / path).resolve()


# Unpacking once.

# Environments already checked by this process, by folder.
_checked: dict[Path, Environment] = {}
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _unpack_once(source: Path, environments_dir: Path, what: str) -> Environment:
    # Hashed and unpacked from one open file: a tarball replaced meanwhile
    # cannot end up in the folder named by the other's hash.
    try:
        tarball = open(source, "rb")  # noqa: SIM115  (closed below)
    except OSError as error:
        raise ModelLoadError(f"{what}: cannot read it: {error}") from None
    with tarball:
        return _unpack_file_once(tarball, source, environments_dir, what)


def _unpack_file_once(tarball: BinaryIO, source: Path, environments_dir: Path, what: str) -> Environment:
    digest = _sha256(tarball, what)
    directory = environments_dir.expanduser().resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"{what}: cannot make environments_dir {directory}: {error}") from None
    final = directory / digest
    with _unpack_lock(final):
        if (final / READY_MARKER).is_file():
            try:
                if final not in _checked:
                    _checked[final] = _inspect(final, what, digest)
                logger.info("%s: using the environment unpacked in %s", what, final)
                return _checked[final]
            except ModelLoadError as error:
                # E.g. environments_dir kept, the base interpreter its venv links to gone.
                logger.warning("%s: unpacking it again: %s", what, error)
                (final / READY_MARKER).unlink()
        # Left by an unpack that did not finish: never trusted, made afresh.
        for leftover in [final, *directory.glob(f"{digest}.partial-*")]:
            if leftover.exists() or leftover.is_symlink():
                logger.warning("%s: removing %s, left by an unpack that did not finish", what, leftover)
                _remove(leftover)
        logger.info("%s: unpacking into %s", what, final)
        partial = Path(tempfile.mkdtemp(prefix=f"{digest}.partial-", dir=directory))
        try:
            interpreter_links = extract(tarball, partial, what)
            check_links_stay_inside(partial, what)
            _relink_interpreters(partial, interpreter_links, what)
            partial.chmod(0o755)
            partial.rename(final)
        except BaseException:
            _remove(partial)
            raise
        try:
            # conda-unpack rewrites prefixes to where it is: in place only.
            _run_conda_unpack(final, what)
            environment = _inspect(final, what, digest)
            marker = {"tarball": str(source), "sha256": digest, "core": environment.core_version}
            (final / f"{READY_MARKER}.tmp").write_text(json.dumps(marker))
            (final / f"{READY_MARKER}.tmp").replace(final / READY_MARKER)
        except BaseException:
            _remove(final)
            raise
        _checked[final] = environment
        return environment


@contextlib.contextmanager
def _unpack_lock(final: Path) -> Iterator[None]:
    """One unpack of a tarball at a time: across threads, and across
    processes sharing environments_dir where file locks exist (POSIX)."""
    with _locks_guard:
        lock = _locks.setdefault(final, threading.Lock())
    with lock:
        if sys.platform == "win32":
            yield
            return
        import fcntl

        path = final.with_name(final.name + ".lock")
        while True:
            file = open(path, "a")  # noqa: SIM115  (closed below)
            fcntl.flock(file, fcntl.LOCK_EX)
            # The lock file of an unpack that failed is removed while locked:
            # a process that was waiting on it locks afresh, on the new file.
            try:
                if os.fstat(file.fileno()).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            file.close()
        try:
            yield
        except BaseException:
            # A refused or failed unpack leaves nothing behind, its lock included.
            if not final.exists():
                path.unlink(missing_ok=True)
            raise
        finally:
            file.close()  # and with it the lock


def _sha256(tarball: BinaryIO, what: str) -> str:
    digest = hashlib.sha256()
    try:
        while chunk := tarball.read(1 << 20):
            digest.update(chunk)
    except OSError as error:
        raise ModelLoadError(f"{what}: cannot read it: {error}") from None
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


# venv: interpreter links.


def _relink_interpreters(root: Path, names: list[str], what: str) -> None:
    """Make the venv interpreter links left out of the archive, to the base
    interpreter of the venv's Python version: the one in pyvenv.cfg's `home`
    when it is on this machine, else the server's own (then `home` is
    rewritten to it)."""
    if not names:
        return
    config = root / "pyvenv.cfg"
    if not config.is_file():
        raise ModelLoadError(
            f"{what}: member '{names[0]}' links outside the environment folder, and with no pyvenv.cfg "
            "there is no telling which interpreter it stands for"
        )
    lines = config.read_text(errors="replace").splitlines()
    values = {key.strip().lower(): value.strip() for key, _, value in (line.partition("=") for line in lines)}
    version = _venv_python_version(root, values)
    if version is None:
        raise ModelLoadError(f"{what}: pyvenv.cfg names no Python version, and lib/ holds no python3.X")
    home = values.get("home", "")
    base_dirs = [Path(home)] if home and os.path.isabs(home) else []
    base_dirs.append(Path(getattr(sys, "_base_executable", sys.executable)).parent)
    executable = "python.exe" if sys.platform == "win32" else f"python{version}"
    base = next((d / executable for d in base_dirs if os.access(d / executable, os.X_OK)), None)
    if base is None:
        raise ModelLoadError(
            f"{what}: its venv needs Python {version}, found neither in pyvenv.cfg's home '{home}' nor "
            f"next to the server's Python ({base_dirs[-1]}); install Python {version} there, or pack "
            "the venv with `venv-pack --python-prefix` naming where it is on the server"
        )
    for name in names:
        link = root.joinpath(*name.split("/"))
        if os.path.lexists(link):
            raise ModelLoadError(f"{what}: member '{name}' is in it twice: a link out, and more")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(base)
    if base.parent != Path(home):
        logger.info("%s: Python %s is not in %s here, using %s", what, version, home or "?", base)
        kept = [line for line in lines if line.partition("=")[0].strip().lower() != "home"]
        config.write_text("\n".join([f"home = {base.parent}", *kept]) + "\n")


def _venv_python_version(root: Path, values: Mapping[str, str]) -> str | None:
    """Like "3.11": from pyvenv.cfg's version (venv) or version_info (virtualenv,
    uv), else from the venv's single lib/python3.X folder."""
    for key in ("version", "version_info"):
        match = re.match(r"(\d+)\.(\d+)", values.get(key, ""))
        if match:
            return f"{match[1]}.{match[2]}"
    found = [p.name[len("python") :] for p in (root / "lib").glob("python*.*") if p.is_dir()]
    return found[0] if len(found) == 1 else None


# conda-pack.


def _run_conda_unpack(root: Path, what: str) -> None:
    """conda-pack's fix-up of the prefixes written into the environment's
    files, run with the environment's own Python, where it now lies."""
    candidates = [root / "bin" / "conda-unpack", root / "Scripts" / "conda-unpack-script.py"]
    script = next((path for path in candidates if path.is_file()), None)
    if script is None:
        return
    python = _find_python(root)
    if python is None:
        raise ModelLoadError(f"{what}: it has {script.relative_to(root)} but no Python to run it with")
    logger.info("%s: running %s", what, script)
    try:
        done = subprocess.run(
            [str(python), str(script)], cwd=root, capture_output=True, text=True,
            timeout=_CONDA_UNPACK_TIMEOUT, env=_variables(root, python),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ModelLoadError(f"{what}: conda-unpack failed: {error}") from None
    if done.returncode != 0:
        raise ModelLoadError(f"{what}: conda-unpack failed ({done.returncode}): {_tail(done.stderr)}")


# The environment's Python.


def _find_python(root: Path) -> Path | None:
    for relative in ("bin/python", "bin/python3", "Scripts/python.exe", "python.exe"):
        path = root / relative
        if path.is_file():
            return path
    return None


def _variables(root: Path, python: Path) -> dict[str, str]:
    return Environment("", root, python, "", "").variables(os.environ)


def _inspect(root: Path, what: str, sha256: str | None = None) -> Environment:
    """The environment of folder `root`, once its Python has shown it can import `core`."""
    root = root.resolve()
    python = _find_python(root)
    if python is None:
        raise ModelLoadError(
            f"{what}: it has no Python (looked for bin/python, bin/python3, Scripts/python.exe, python.exe)"
        )
    try:
        done = subprocess.run(
            [str(python), "-c", _CHECK_SCRIPT], cwd=root, capture_output=True, text=True,
            timeout=_CHECK_TIMEOUT, env=_variables(root, python),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ModelLoadError(f"{what}: cannot run its Python {python}: {error}") from None
    output = done.stdout.split()
    if done.returncode != 0 or len(output) != 2:
        if not output:
            raise ModelLoadError(f"{what}: its Python {python} does not start: {_tail(done.stderr)}")
        if "No module named 'core'" in done.stderr:
            raise ModelLoadError(
                f"{what}: `core` is not installed in it (Python {output[0]} at {python}); a custom "
                f"environment needs `core` (the server has {__version__}) and the model's runtime plugin "
                "installed in it"
            )
        raise ModelLoadError(
            f"{what}: its Python {output[0]} at {python} cannot import core: {_tail(done.stderr)}"
        )
    python_version, core_version = output
    if core_version != __version__:
        logger.warning("%s: it has core %s, the server core %s", what, core_version, __version__)
    return Environment(str(root), root, python, python_version, core_version, sha256)


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
