"""The plugin system: the core's own codecs arrive through it, plugins are
discovered from real entry points, and a broken plugin never stops the others."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from core.codecs import (
    Base64Codec,
    DatetimeCodec,
    InputCodec,
    NumpyCodec,
    NumpyRequestCodec,
    StringCodec,
    StringRequestCodec,
    find_input_codec,
)
from core.plugins import HOOKS_VERSION, Launcher, PluginManager, Runtime, get_plugin_manager, hookimpl
from core.plugins import builtin as builtin_plugin
from core.version import __version__

VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def plugin_named(manager: PluginManager, name: str) -> Any:
    matches = [info for info in manager.plugins if info.name == name]
    assert len(matches) == 1, [info.name for info in manager.plugins]
    return matches[0]


def test_the_core_is_a_plugin_of_itself() -> None:
    core = plugin_named(get_plugin_manager(), "core")
    assert core.distribution == "core"
    assert core.version == __version__
    assert core.error is None
    assert core.input_codecs == ["np", "str", "base64", "datetime", "json"]
    assert core.request_codecs == ["np", "str", "dict", "pd"]


def test_the_sklearn_plugin_is_discovered() -> None:
    sklearn = plugin_named(get_plugin_manager(), "sklearn")
    assert sklearn.distribution == "core-sklearn"
    assert sklearn.error is None
    assert [runtime.alias for runtime in sklearn.runtimes] == ["sklearn"]
    assert sklearn.runtimes[0].implementation == "core_sklearn.SKLearnModel"
    assert "*.joblib" in sklearn.runtimes[0].artifacts
    assert get_plugin_manager().runtime("sklearn") == sklearn.runtimes[0]
    assert get_plugin_manager().runtime("no-such-alias") is None


def test_the_core_comes_first() -> None:
    manager = PluginManager()
    assert manager.plugins[0].name == "core"
    codecs = manager.codecs()
    assert codecs[:6] == [
        NumpyCodec,
        NumpyRequestCodec,
        StringCodec,
        StringRequestCodec,
        Base64Codec,
        DatetimeCodec,
    ]


def test_builtin_codecs_reach_the_registry_through_the_hook() -> None:
    assert builtin_plugin.core_codecs()[0] is NumpyCodec
    assert find_input_codec("np") is NumpyCodec
    assert HOOKS_VERSION == 4


class HandCodec(InputCodec):
    ContentType = "x-hand"


class HandPlugin:
    @hookimpl
    def core_runtimes(self) -> list[Runtime]:
        return [Runtime(alias="hand", implementation="hand_module.HandModel", artifacts=("*.hand",))]

    @hookimpl
    def core_codecs(self) -> list[Any]:
        return [HandCodec]


def test_register_a_plugin_by_hand() -> None:
    manager = PluginManager(load_entry_points=False)
    assert manager.plugins == []
    assert manager.runtimes() == []
    assert manager.codecs() == []
    manager.register(HandPlugin(), "hand", distribution="hand-dist", version="9.9")
    [info] = manager.plugins
    assert (info.name, info.distribution, info.version, info.error) == ("hand", "hand-dist", "9.9", None)
    assert info.input_codecs == ["x-hand"]
    assert info.request_codecs == []
    assert [runtime.alias for runtime in info.runtimes] == ["hand"]
    runtime = manager.runtime("hand")
    assert runtime is not None
    assert runtime.implementation == "hand_module.HandModel"
    assert manager.codecs() == [HandCodec]


class RoutesPlugin:
    @hookimpl
    def core_rest_routers(self, dataplane: Any, settings: Any) -> list[Any]:
        from fastapi import APIRouter

        router = APIRouter()
        router.add_api_route("/extra", lambda: {"dataplane": repr(dataplane)}, methods=["GET"])
        return [router]


class BrokenRoutesPlugin:
    @hookimpl
    def core_rest_routers(self, dataplane: Any, settings: Any) -> list[Any]:
        raise RuntimeError("no routes today")


def test_rest_routers_come_from_plugins_and_a_failing_hook_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(RoutesPlugin(), "routes")
    manager.register(BrokenRoutesPlugin(), "broken-routes")
    assert [info.rest_routes for info in manager.plugins] == [True, True]
    [router] = manager.rest_routers("the-dataplane", None)
    assert [route.path for route in router.routes] == ["/extra"]  # type: ignore[attr-defined]
    assert "plugin 'broken-routes' failed to provide its REST routes" in caplog.text
    assert plugin_named(manager, "routes").rest_routes
    manager.register(HandPlugin(), "hand")
    assert not plugin_named(manager, "hand").rest_routes


def test_register_by_hand_defaults_the_distribution_to_the_name() -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(HandPlugin(), "solo")
    assert manager.plugins[0].distribution == "solo"


def test_register_the_same_name_twice_is_refused() -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(HandPlugin(), "hand")
    with pytest.raises(ValueError):
        manager.register(HandPlugin(), "hand")


# Real entry points from a folder on PYTHONPATH, in a fresh interpreter


def make_distribution(root: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{alias} = {target}\n" for alias, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[core]\n{lines}")


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "broken_plugin_pkg.py").write_text("raise RuntimeError('needs libfoo 2.0')\n")
    (root / "good_plugin_mod.py").write_text(
        textwrap.dedent(
            """
            from core.codecs import StringCodec
            from core.plugins import Runtime, hookimpl


            class ShoutCodec(StringCodec):
                ContentType = "x-shout"


            @hookimpl
            def core_runtimes():
                return [Runtime(alias="echo-test", implementation="good_plugin_mod.EchoModel")]


            @hookimpl
            def core_codecs():
                return [ShoutCodec]
            """
        )
    )
    (root / "raising_hook_mod.py").write_text(
        "from core.plugins import hookimpl\n\n\n@hookimpl\n"
        "def core_codecs():\n    raise ValueError('codec table corrupt')\n"
    )
    make_distribution(root, "core-broken", "1.0", {"broken": "broken_plugin_pkg"})
    make_distribution(root, "core-good", "2.0", {"good": "good_plugin_mod"})
    make_distribution(root, "core-raising", "0.3", {"raising": "raising_hook_mod"})
    make_distribution(root, "core-missing", "0.1", {"missing": "module_that_is_not_there"})
    return root


def run_python(plugin_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORE_")}
    env["PYTHONPATH"] = str(plugin_path)
    return subprocess.run([PYTHON, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_core_plugins_reports_broken_plugins_and_lists_the_others(plugin_path: Path) -> None:
    result = run_python(plugin_path, "-m", "core", "plugins")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "core  (core " in out
    assert "sklearn  (core-sklearn " in out
    assert "runtime sklearn: core_sklearn.SKLearnModel" in out
    assert "good  (core-good 2.0)" in out
    assert "runtime echo-test: good_plugin_mod.EchoModel" in out
    assert "input codecs: x-shout" in out
    assert "broken  (core-broken 1.0)\n  FAILED to load: RuntimeError: needs libfoo 2.0" in out
    assert "raising  (core-raising 0.3)\n  FAILED to load: ValueError: codec table corrupt" in out
    assert "missing  (core-missing 0.1)\n  FAILED to load: ModuleNotFoundError" in out
    assert "module_that_is_not_there" in out
    # The listing is stable: the core first, then by name.
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names[0] == "core"
    assert names[1:] == sorted(names[1:])


def test_working_plugins_serve_while_a_broken_one_is_skipped(plugin_path: Path) -> None:
    script = textwrap.dedent(
        """
        from core.codecs import find_input_codec
        from core.plugins import get_plugin_manager

        manager = get_plugin_manager()
        failed = sorted(info.name for info in manager.plugins if info.error)
        print("failed", failed)
        print("shout", find_input_codec("x-shout").__name__)
        print("np", find_input_codec("np").__name__)
        print("alias", manager.runtime("echo-test").implementation)
        print("sklearn", manager.runtime("sklearn").implementation)
        """
    )
    result = run_python(plugin_path, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "failed ['broken', 'missing', 'raising']",
        "shout ShoutCodec",
        "np NumpyCodec",
        "alias good_plugin_mod.EchoModel",
        "sklearn core_sklearn.SKLearnModel",
    ]
    assert "broken" in result.stderr  # logged as a warning


class LauncherPlugin:
    @hookimpl
    def core_launchers(self) -> list[Launcher]:
        return [Launcher("echo-engine", "json:dumps", "an engine for the test")]


def test_launchers_are_listed_and_an_unknown_engine_is_refused(tmp_path: Path) -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(LauncherPlugin(), "launching")
    assert manager.launchers() == [Launcher("echo-engine", "json:dumps", "an engine for the test")]
    assert manager.plugins[0].launchers == manager.launchers()
    done = subprocess.run(
        [sys.executable, "-m", "core", "start", str(tmp_path), "--on", "no-such-engine"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no plugin serves on 'no-such-engine'" in done.stderr
    assert "ray" in done.stderr  # core-ray is installed here: named among the engines
