"""Custom environments (core.workers.environments): settings, unpacking once,
hostile tarballs, venv-pack's interpreter links, conda-pack's conda-unpack,
the environment's Python and `core` in it.

Tarballs are built here with tarfile. Their `bin/python` is a shell script
that runs the test's own interpreter (which has `core`), or a venv whose
site-packages adds the test's, so a check runs in a fraction of a second;
the slow tests use a real venv-pack tarball (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigurationError, ModelLoadError
from core.settings import ModelParameters, ModelSettings, Settings, load_settings_file
from core.version import __version__
from core.workers import environments, tarballs
from core.workers.environments import (
    READY_MARKER,
    Environment,
    prepare_environment,
    prepare_environment_async,
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the environments built here are POSIX ones")

Member = tuple[tarfile.TarInfo, bytes | None]
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
BASE_PYTHON = Path(getattr(sys, "_base_executable", None) or sys.executable)


@pytest.fixture(autouse=True)
def fresh_module_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing checked by an earlier test is taken as checked."""
    monkeypatch.setattr(environments, "_checked", {})


@pytest.fixture(params=["stdlib filter", "own filter"])
def extraction(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of extracting: with tarfile.data_filter, and as on Pythons
    without it (before 3.10.12 / 3.11.4)."""
    if request.param == "stdlib filter" and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile.data_filter")
    monkeypatch.setattr(tarballs, "_STDLIB_FILTER", request.param == "stdlib filter")


# Building tarballs.


def file(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def folder(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def symlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def hardlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def special(name: str, kind: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = kind, 1, 3
    return info, None


def shim_python(target: Path = Path(sys.executable)) -> Member:
    """bin/python: runs `target`, by default the test's interpreter, which has core."""
    return file("bin/python", f'#!/bin/sh\nexec "{target}" "$@"\n'.encode(), mode=0o755)


def write_tarball(path: Path, members: list[Member]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tarball_settings(tarball: str | Path, name: str = "m") -> ModelSettings:
    return ModelSettings(name=name, parameters=ModelParameters(environment_tarball=str(tarball)))


def unpacked(environments_dir: Path) -> list[str]:
    """What environments_dir holds, lock files aside."""
    if not environments_dir.exists():
        return []
    return sorted(p.name for p in environments_dir.iterdir() if not p.name.endswith(".lock"))


# Settings.


def test_environments_dir_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().environments_dir == ".envs"
    monkeypatch.setenv("CORE_ENVIRONMENTS_DIR", "/var/cache/core-envs")
    assert Settings().environments_dir == "/var/cache/core-envs"


def test_a_model_without_an_environment_has_none(tmp_path: Path) -> None:
    settings = ModelSettings(name="plain")
    assert prepare_environment(settings, tmp_path / "envs") is None
    assert asyncio.run(prepare_environment_async(settings, tmp_path / "envs")) is None
    assert not (tmp_path / "envs").exists()


def test_both_a_tarball_and_a_path_is_an_error_naming_the_model(tmp_path: Path) -> None:
    parameters = ModelParameters(environment_tarball="env.tar.gz", environment_path="env")
    with pytest.raises(ConfigurationError) as error:
        prepare_environment(ModelSettings(name="both", parameters=parameters), tmp_path)
    message = str(error.value)
    assert "model 'both'" in message
    assert "environment_tarball" in message and "environment_path" in message


def test_a_missing_tarball_or_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"model 'gone'.*environment_tarball .*nope\.tar\.gz"):
        prepare_environment(tarball_settings(tmp_path / "nope.tar.gz", name="gone"), tmp_path / "envs")
    settings = ModelSettings(name="gone", parameters=ModelParameters(environment_path=str(tmp_path / "no")))
    with pytest.raises(ConfigurationError, match=r"model 'gone'.*environment_path .*no is not a folder"):
        prepare_environment(settings, tmp_path / "envs")


def test_relative_tarball_resolves_against_the_model_settings_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "models" / "m"
    write_tarball(model / "env" / "environment.tar.gz", [shim_python()])
    (model / "model-settings.json").write_text(
        json.dumps({"name": "m", "parameters": {"environment_tarball": "./env/environment.tar.gz"}})
    )
    monkeypatch.chdir(tmp_path)  # not the model's folder
    settings = load_settings_file(ModelSettings, model / "model-settings.json")
    environment = prepare_environment(settings, tmp_path / "envs")
    assert environment is not None
    assert environment.root.parent == tmp_path / "envs"
    assert environment.python == environment.root / "bin" / "python"
    assert environment.key == str(environment.root)
    assert environment.core_version == __version__
    assert environment.python_version.startswith(f"{VERSION}.")
    assert (environment.root / READY_MARKER).is_file()


def test_relative_environment_path_is_used_in_place(tmp_path: Path) -> None:
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "model-settings.json").write_text(
        json.dumps({"name": "m", "parameters": {"environment_path": "../shared-env"}})
    )
    bin_folder = tmp_path / "models" / "shared-env" / "bin"
    bin_folder.mkdir(parents=True)
    (bin_folder / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_folder / "python").chmod(0o755)
    environment = prepare_environment(
        load_settings_file(ModelSettings, model / "model-settings.json"), tmp_path / "envs"
    )
    assert environment is not None
    assert environment.key == str((tmp_path / "models" / "shared-env").resolve())
    assert environment.sha256 is None
    assert not (tmp_path / "envs").exists()  # nothing unpacked


def test_async_preparation(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", [shim_python()])
    environment = asyncio.run(prepare_environment_async(tarball_settings(tarball), tmp_path / "envs"))
    assert environment is not None and environment.core_version == __version__


# Unpacking once.


def test_a_tarball_is_unpacked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", [shim_python()])
    first = prepare_environment(tarball_settings(tarball, "a"), tmp_path / "envs")
    assert first is not None
    (first.root / "touched").write_text("left by the test")
    # Another model, and (its memory of checked environments gone) another server process.
    second = prepare_environment(tarball_settings(tarball, "b"), tmp_path / "envs")
    monkeypatch.setattr(environments, "_checked", {})
    third = prepare_environment(tarball_settings(tarball, "c"), tmp_path / "envs")
    assert first == second == third
    assert (first.root / "touched").is_file()
    assert unpacked(tmp_path / "envs") == [first.root.name]


def test_a_changed_tarball_is_unpacked_again(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", [shim_python()])
    first = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    write_tarball(tarball, [shim_python(), file("NEW", b"changed")])
    second = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert first is not None and second is not None
    assert first.key != second.key and second.sha256 != first.sha256
    assert (second.root / "NEW").read_text() == "changed"
    assert not (first.root / "NEW").exists()


def test_an_unfinished_unpack_is_never_trusted(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", [shim_python()])
    first = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert first is not None
    digest = first.root.name
    # As a crash would leave them: the folder without its marker, a partial one.
    (first.root / READY_MARKER).unlink()
    (first.root / "half-written").write_text("")
    (tmp_path / "envs" / f"{digest}.partial-x1y2").mkdir()
    environments._checked.clear()
    second = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert second == first
    assert not (second.root / "half-written").exists()
    assert (second.root / READY_MARKER).is_file()
    assert unpacked(tmp_path / "envs") == [digest]


def test_an_unpacked_environment_that_broke_is_unpacked_again(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", [shim_python()])
    first = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert first is not None
    first.python.unlink()
    environments._checked.clear()
    second = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert second == first and second.python.is_file()


CONDA_UNPACK = b"""\
import os, sys
prefix = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(prefix, "unpacked-at"), "a") as log:
    log.write(prefix + "\\n")
"""


def test_concurrent_preparations_unpack_once(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "env.tar.gz", [shim_python(), file("bin/conda-unpack", CONDA_UNPACK, 0o755)]
    )
    results: list[Environment | None] = []
    threads = [
        threading.Thread(
            target=lambda n=n: results.append(
                prepare_environment(tarball_settings(tarball, f"m{n}"), tmp_path / "envs")
            )
        )
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len({r.key for r in results if r}) == 1
    root = results[0].root if results[0] else None
    assert root is not None and len((root / "unpacked-at").read_text().splitlines()) == 1


# conda-pack.


def test_conda_unpack_runs_where_the_environment_lies(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "env.tar.gz",
        [shim_python(), file("bin/conda-unpack", CONDA_UNPACK, 0o755), folder("conda-meta")],
    )
    environment = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert environment is not None
    assert (environment.root / "unpacked-at").read_text() == f"{environment.root}\n"
    assert environment.variables({"PATH": "/usr/bin"})["CONDA_PREFIX"] == str(environment.root)


def test_a_failing_conda_unpack_leaves_nothing_trusted(tmp_path: Path) -> None:
    script = b"import sys\nsys.exit('prefix placeholder too long')\n"
    tarball = write_tarball(tmp_path / "env.tar.gz", [shim_python(), file("bin/conda-unpack", script)])
    with pytest.raises(ModelLoadError, match=r"model 'm'.*conda-unpack failed \(1\).*placeholder too long"):
        prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert unpacked(tmp_path / "envs") == []


# The environment's Python.


def test_an_environment_without_python(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", [file("lib/readme.txt", b"no python here")])
    with pytest.raises(ModelLoadError, match=r"model 'm'.*env\.tar\.gz.*has no Python .*bin/python"):
        prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert unpacked(tmp_path / "envs") == []


def test_an_environment_without_core(tmp_path: Path) -> None:
    # The base interpreter, with no venv around it, has no core.
    tarball = write_tarball(tmp_path / "env.tar.gz", [shim_python(BASE_PYTHON)])
    with pytest.raises(ModelLoadError) as error:
        prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    message = str(error.value)
    assert "model 'm'" in message and "env.tar.gz" in message
    assert "`core` is not installed in it" in message and f"Python {VERSION}." in message


def test_a_python_that_does_not_start(tmp_path: Path) -> None:
    broken = file("bin/python", b"#!/bin/sh\necho 'cannot open shared object' >&2\nexit 127\n", 0o755)
    tarball = write_tarball(tmp_path / "env.tar.gz", [broken])
    with pytest.raises(ModelLoadError, match=r"does not start: cannot open shared object"):
        prepare_environment(tarball_settings(tarball), tmp_path / "envs")


def test_not_a_tarball(tmp_path: Path) -> None:
    (tmp_path / "env.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ModelLoadError, match=r"model 'm'.*env\.tar\.gz: cannot unpack it"):
        prepare_environment(tarball_settings(tmp_path / "env.tar.gz"), tmp_path / "envs")
    assert unpacked(tmp_path / "envs") == []


def test_worker_variables() -> None:
    environment = Environment("k", Path("/envs/abc"), Path("/envs/abc/bin/python"), "3.11.7", "0.1.0")
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/src", "PYTHONHOME": "/usr", "HOME": "/root"}
    variables = environment.variables(base)
    assert variables["PATH"] == f"/envs/abc/bin{os.pathsep}/usr/bin"
    assert "PYTHONPATH" not in variables and "PYTHONHOME" not in variables
    assert variables["HOME"] == "/root"
    assert base["PYTHONPATH"] == "/src"  # untouched


# Hostile tarballs.

# Each: the offending member, and the members, given the folder outside.
HOSTILE: dict[str, Callable[[Path], tuple[str, list[Member]]]] = {
    "traversal": lambda o: ("../../outside/evil", [file("../../outside/evil", b"x")]),
    "nested traversal": lambda o: ("bin/../../../outside/evil", [file("bin/../../../outside/evil", b"x")]),
    "absolute path": lambda o: (f"{o}/evil", [file(f"{o}/evil", b"x")]),
    "symlink out, absolute": lambda o: ("link", [symlink("link", str(o)), file("link/evil", b"x")]),
    "symlink out, relative": lambda o: ("link", [symlink("link", "../../outside"), file("link/evil", b"x")]),
    # s2 is inside while s1 points deep, outside once s1 is re-pointed.
    "symlink re-pointed, then written through": lambda o: (
        "s2/evil",
        [
            folder("d/e/f"),
            symlink("s1", "d/e/f"),
            symlink("s2", "s1/../../.."),
            symlink("s1", "d"),
            file("s2/evil", b"x"),
        ],
    ),
    "symlink re-pointed": lambda o: (
        "s2",
        [folder("d/e/f"), symlink("s1", "d/e/f"), symlink("s2", "s1/../../.."), symlink("s1", "d")],
    ),
    "hardlink out, relative": lambda o: ("hard", [hardlink("hard", "../../outside/secret")]),
    "hardlink out, absolute": lambda o: ("hard", [hardlink("hard", f"{o}/secret")]),
    "hardlink to a link": lambda o: ("hard", [symlink("link", "bin"), hardlink("hard", "link")]),
    "character device": lambda o: ("dev/null", [special("dev/null", tarfile.CHRTYPE)]),
    "block device": lambda o: ("dev/sda", [special("dev/sda", tarfile.BLKTYPE)]),
    "fifo": lambda o: ("pipe", [special("pipe", tarfile.FIFOTYPE)]),
    # A link out named like an interpreter, in a tarball that is not a venv.
    "interpreter link without pyvenv.cfg": lambda o: (
        "bin/python3",
        [symlink("bin/python3", "/usr/bin/python3")],
    ),
}


def test_a_refused_tarball_leaves_nothing_not_even_its_lock(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "in" / "env.tar.gz", [file("../escape", b"x")])
    with pytest.raises(ModelLoadError, match="leaves the environment folder"):
        prepare_environment(tarball_settings(tarball, name="hostile"), tmp_path / "envs")
    assert list((tmp_path / "envs").iterdir()) == []


@pytest.mark.usefixtures("extraction")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_tarballs_are_refused_naming_the_member(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    offender, members = HOSTILE[case](outside)
    tarball = write_tarball(tmp_path / "in" / "env.tar.gz", members)
    with pytest.raises(ModelLoadError) as error:
        prepare_environment(tarball_settings(tarball, name="hostile"), tmp_path / "envs")
    message = str(error.value)
    assert "model 'hostile'" in message and str(tarball) in message
    assert f"member '{offender}'" in message, message
    # Nothing written outside, nothing left to be trusted.
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "secret"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envs", "in", "outside"]
    assert unpacked(tmp_path / "envs") == []


@pytest.mark.usefixtures("extraction")
def test_links_inside_the_environment_are_kept(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "env.tar.gz",
        [
            shim_python(),
            symlink("bin/python3", "python"),
            symlink("lib64", "lib"),
            file("lib/data.txt", b"data"),
            file("bin/tool", b"#!/bin/sh\n", mode=0o4777),  # setuid, world-writable
            hardlink("lib/data-again.txt", "lib/data.txt"),
            symlink("share/link-up", "../lib64/data.txt"),
        ],
    )
    environment = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert environment is not None
    root = environment.root
    assert os.readlink(root / "bin" / "python3") == "python"
    assert (root / "lib64" / "data.txt").read_text() == "data"
    assert (root / "share" / "link-up").read_text() == "data"
    assert (root / "lib" / "data-again.txt").stat().st_ino == (root / "lib" / "data.txt").stat().st_ino
    assert (root / "bin" / "tool").stat().st_mode & 0o7777 == 0o755


# venv: the interpreter links venv-pack packs.


def venv_members(home: str, version: str = VERSION) -> list[Member]:
    """What venv-pack makes of a venv: bin/pythonX.Y an absolute link to the
    packing machine's interpreter, the other names relative links to it.
    Its site-packages adds the test's own, where core is."""
    site = f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n"
    config = f"home = {home}\ninclude-system-site-packages = false\nversion = {version}.0\n"
    return [
        file("pyvenv.cfg", config.encode()),
        symlink("bin/python", f"python{version}"),
        symlink("bin/python3", f"python{version}"),
        symlink(f"bin/python{version}", f"/packing-machine/bin/python{version}"),
        file(f"lib/python{version}/site-packages/test-site.pth", site.encode()),
        symlink("lib64", "lib"),
    ]


def run_python(environment: Environment, code: str) -> str:
    done = subprocess.run(
        [str(environment.python), "-c", code],
        capture_output=True, text=True, timeout=60, env=environment.variables(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.usefixtures("extraction")
def test_venv_interpreter_links_are_made_to_pyvenv_home(tmp_path: Path) -> None:
    home = str(BASE_PYTHON.parent)
    tarball = write_tarball(tmp_path / "env.tar.gz", venv_members(home))
    environment = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert environment is not None
    root = environment.root
    assert os.readlink(root / "bin" / f"python{VERSION}") == str(BASE_PYTHON.parent / f"python{VERSION}")
    assert os.readlink(root / "bin" / "python") == f"python{VERSION}"
    assert f"home = {home}\n" in (root / "pyvenv.cfg").read_text()
    # It is a venv of its own: sys.prefix is the environment's folder.
    assert run_python(environment, "import sys; print(sys.prefix)") == str(root)
    assert environment.variables({})["VIRTUAL_ENV"] == str(root)


def test_venv_from_a_machine_whose_home_is_not_here(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", venv_members("/packing-machine/bin"))
    environment = prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert environment is not None
    base = BASE_PYTHON.parent
    assert os.readlink(environment.root / "bin" / f"python{VERSION}") == str(base / f"python{VERSION}")
    config = (environment.root / "pyvenv.cfg").read_text()
    assert f"home = {base}\n" in config and "/packing-machine" not in config
    assert run_python(environment, "import sys; print(sys.prefix)") == str(environment.root)


def test_venv_of_a_python_not_on_this_machine(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "env.tar.gz", venv_members("/packing-machine/bin", version="2.7"))
    with pytest.raises(ModelLoadError, match=r"model 'm'.*needs Python 2\.7.*venv-pack --python-prefix"):
        prepare_environment(tarball_settings(tarball), tmp_path / "envs")
    assert unpacked(tmp_path / "envs") == []


def test_other_links_out_of_a_venv_are_refused(tmp_path: Path) -> None:
    members = [*venv_members(str(BASE_PYTHON.parent)), symlink("bin/tool", "/usr/bin/env")]
    tarball = write_tarball(tmp_path / "env.tar.gz", members)
    with pytest.raises(ModelLoadError, match=r"member 'bin/tool' is a symbolic link to '/usr/bin/env'"):
        prepare_environment(tarball_settings(tarball), tmp_path / "envs")


# A real environment, packed with venv-pack (slow: built once per session).


@pytest.mark.slow
def test_packed_environment_imports_core_and_its_own_library(packed_environment: Any, tmp_path: Path) -> None:
    environment = prepare_environment(tarball_settings(packed_environment.tarball), tmp_path / "envs")
    assert environment is not None
    assert environment.core_version == __version__
    library = packed_environment.library
    found = json.loads(
        run_python(
            environment,
            f"import json, sys, core, importlib.metadata as m; print(json.dumps({{'core': core.__file__, "
            f"'version': m.version({library!r}), 'prefix': sys.prefix}}))",
        )
    )
    assert found["version"] == packed_environment.version != importlib.metadata.version(library)
    assert Path(found["core"]).is_relative_to(environment.root), found
    assert found["prefix"] == str(environment.root)
    # venv-pack packed one interpreter link to the base Python, absolute: it
    # was made anew, to this machine's Python of the same version.
    links = [os.readlink(path) for path in (environment.root / "bin").glob("python*") if path.is_symlink()]
    absolute = [Path(link) for link in links if os.path.isabs(link)]
    assert absolute == [BASE_PYTHON.parent / f"python{VERSION}"], links
