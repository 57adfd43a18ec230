"""Serving an artifact without model-settings.json: which runtime recognises a
file (core.repository.artifacts), reading a pickle's class without loading
it, and the models find_models builds for a file or a folder."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import pickle
import zlib
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Any

import joblib
import pytest

from core.plugins import PluginManager, Runtime, hookimpl
from core.repository import find_models, pickled_class
from core.repository import finder as finder_module
from core.repository.artifacts import detect, detect_in_folder

# Test runtimes: a generic pickle runtime (by name only), one that looks
# inside pickles, one for text files that start with "tree".


def _pickle_of_fractions(path: Path) -> bool:
    return (pickled_class(path) or "").startswith("fractions.")


def _tree_text(path: Path) -> bool:
    return path.read_bytes().startswith(b"tree")


PICKLES = Runtime("pickles", "pickles.Model", artifacts=("*.joblib", "*.pkl"))
FRACTIONS = Runtime("fractions", "fractions.Model", artifacts=("*.joblib",), recognise=_pickle_of_fractions)
TREES = Runtime("trees", "trees.Model", artifacts=("*.txt", "*.bst"), recognise=_tree_text)
RUNTIMES = [PICKLES, FRACTIONS, TREES]


def aliases(path: Path, runtimes: list[Runtime] = RUNTIMES) -> list[str]:
    return [runtime.alias for runtime in detect(path, runtimes).runtimes]


# pickled_class


class Plain:
    pass


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickled_class_of_every_binary_protocol(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Fraction(1, 3), protocol=protocol))
    assert pickled_class(path) == "fractions.Fraction"


def test_pickled_class_names_the_outer_object(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(OrderedDict(a=Fraction(1, 2))))
    assert pickled_class(path) == "collections.OrderedDict"


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_pickled_class_of_joblib_files(tmp_path: Path, compress: Any) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(Fraction(1, 3), path, compress=compress)
    assert pickled_class(path) == "fractions.Fraction"


@pytest.mark.parametrize(
    "compress", [zlib.compress, gzip.compress, bz2.compress, lzma.compress], ids=["zlib", "gzip", "bz2", "xz"]
)
def test_pickled_class_of_compressed_pickles(tmp_path: Path, compress: Any) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(compress(pickle.dumps(Fraction(1, 3))))
    assert pickled_class(path) == "fractions.Fraction"


class Touch:
    """Unpickling it creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path.touch, (str(self.path),))


def test_pickled_class_never_unpickles(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps(Touch(marker)))
    assert pickled_class(path) == "pathlib.Path.touch"
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # what loading it would do
    assert marker.exists()


def test_pickled_class_of_containers_is_none(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    for container in ({"model": Fraction(1, 3)}, [Fraction(1, 3)]):
        path.write_bytes(pickle.dumps(container))
        assert pickled_class(path) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"tree\nversion=v4\n",
        b'{"learner": {}}',
        pickle.dumps(Fraction(1, 3), protocol=0),
        b"\x80\x05garbage",
    ],
)
def test_pickled_class_of_what_is_not_a_binary_pickle(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    assert pickled_class(path) is None


# detect: the rules


def test_a_runtime_that_recognises_the_file_wins_over_a_match_by_name(tmp_path: Path) -> None:
    fraction = tmp_path / "fraction.joblib"
    joblib.dump(Fraction(1, 3), fraction)
    assert aliases(fraction) == ["fractions"]


def test_a_runtime_that_does_not_recognise_the_file_drops_out(tmp_path: Path) -> None:
    other = tmp_path / "other.joblib"
    joblib.dump(Plain(), other)
    assert aliases(other) == ["pickles"]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert aliases(notes) == []


def test_several_runtimes_matching_by_name_are_ambiguous(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Plain()))
    detection = detect(path, [PICKLES, Runtime("other", "other.Model", artifacts=("*.pkl",))])
    assert detection.ambiguous
    assert [r.alias for r in detection.runtimes] == ["pickles", "other"]


def test_patterns_ignore_case_and_settings_files_are_never_artifacts(tmp_path: Path) -> None:
    path = tmp_path / "MODEL.TXT"
    path.write_text("tree\nversion=v4\n")
    assert aliases(path) == ["trees"]
    jsons = [Runtime("json", "json.Model", artifacts=("*.json",))]
    for name in ("model-settings.json", "settings.json", "model.json"):
        (tmp_path / name).write_text("{}")
    assert aliases(tmp_path / "model-settings.json", jsons) == []
    assert aliases(tmp_path / "settings.json", jsons) == []
    assert aliases(tmp_path / "model.json", jsons) == ["json"]


def test_a_failing_recogniser_is_a_no(tmp_path: Path) -> None:
    def broken(path: Path) -> bool:
        raise RuntimeError("bug")

    path = tmp_path / "model.txt"
    path.write_text("tree")
    assert aliases(path, [Runtime("broken", "b.Model", artifacts=("*.txt",), recognise=broken)]) == []


def test_detect_in_folder_skips_hidden_and_unrecognised_files(tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("tree\nversion=v4\n")
    (tmp_path / "requirements.txt").write_text("lightgbm\n")
    (tmp_path / ".hidden.pkl").write_bytes(pickle.dumps(Plain()))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.pkl").write_bytes(pickle.dumps(Plain()))
    assert [d.path.name for d in detect_in_folder(tmp_path, RUNTIMES)] == ["model.txt"]


# find_models with a bare artifact


class _TestRuntimes:
    @staticmethod
    @hookimpl
    def core_runtimes() -> list[Runtime]:
        return RUNTIMES


@pytest.fixture
def test_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository sees the test runtimes above as the installed ones."""
    manager = PluginManager(load_entry_points=False)
    manager.register(_TestRuntimes, name="test-runtimes")
    monkeypatch.setattr(finder_module, "get_plugin_manager", lambda: manager)


@pytest.mark.usefixtures("test_runtimes")
def test_a_file_is_served_under_its_stem(tmp_path: Path) -> None:
    path = tmp_path / "third.joblib"
    joblib.dump(Fraction(1, 3), path)
    [found] = find_models(path)
    assert found.artifact and found.error is None and found.settings is not None
    assert (found.name, found.path) == ("third", path)
    assert found.settings.implementation == "fractions"
    assert found.settings.parameters.uri == str(path.resolve())


@pytest.mark.usefixtures("test_runtimes")
def test_a_folder_with_one_artifact_is_served_under_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.bst").write_text("tree\nversion=v4\n")
    (folder / "README.txt").write_text("how this model was trained")
    (folder / "settings.json").write_text("{}")
    [found] = find_models(folder)
    assert found.settings is not None, found.error
    assert (found.name, found.path, found.settings.implementation) == (
        "my-model",
        folder / "model.bst",
        "trees",
    )


@pytest.mark.usefixtures("test_runtimes")
def test_model_settings_files_keep_precedence_over_artifacts(tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("tree\nversion=v4\n")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model-settings.json").write_text(json.dumps({"implementation": "trees"}))
    (tmp_path / "m" / "model.txt").write_text("tree\nversion=v4\n")
    found = find_models(tmp_path)
    assert [(f.name, f.path, f.artifact) for f in found] == [
        ("m", tmp_path / "m" / "model-settings.json", False)
    ]
    # A model-settings.json given as the path is that one model.
    [one] = find_models(tmp_path / "m" / "model-settings.json")
    assert (one.name, one.artifact) == ("m", False)


@pytest.mark.usefixtures("test_runtimes")
def test_an_unrecognised_file_is_an_error_naming_it_and_the_runtimes(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a model")
    [found] = find_models(path)
    assert found.artifact and found.settings is None and found.error is not None
    assert f"no installed runtime recognises {path}" in found.error
    assert "fractions (*.joblib), pickles (*.joblib, *.pkl), trees (*.txt, *.bst)" in found.error
    assert "model-settings.json" in found.error


@pytest.mark.usefixtures("test_runtimes")
def test_an_ambiguous_file_is_an_error_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = Runtime("other", "other.Model", artifacts=("*.pkl",))
    manager = PluginManager(load_entry_points=False)
    manager.register(_TestRuntimes, name="test-runtimes")

    class Other:
        @staticmethod
        @hookimpl
        def core_runtimes() -> list[Runtime]:
            return [other]

    manager.register(Other, name="other")
    monkeypatch.setattr(finder_module, "get_plugin_manager", lambda: manager)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Plain()))
    [found] = find_models(path)
    assert found.error is not None
    assert f"several installed runtimes can serve {path}" in found.error
    assert "other (other.Model), pickles (pickles.Model)" in found.error
    assert "--implementation" in found.error and "model-settings.json" in found.error
    # The user's choice settles it.
    monkeypatch.setenv("CORE_MODEL_IMPLEMENTATION", "other")
    [chosen] = find_models(path)
    assert chosen.settings is not None and chosen.settings.implementation == "other"


@pytest.mark.usefixtures("test_runtimes")
def test_a_folder_with_several_artifacts_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("tree\nversion=v4\n")
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(Plain()))
    [found] = find_models(tmp_path)
    assert found.error is not None and "several model artifacts (a.txt, b.pkl)" in found.error


@pytest.mark.usefixtures("test_runtimes")
def test_a_folder_without_artifacts_serves_nothing(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("nothing to serve")
    (tmp_path / "notes.txt").write_text("not a model")
    assert find_models(tmp_path) == []


@pytest.mark.usefixtures("test_runtimes")
def test_environment_variables_name_the_model_and_choose_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.txt").write_text("not a tree model")
    (folder / "requirements.txt").write_text("numpy\n")
    (folder / "model.pkl").write_bytes(pickle.dumps(Plain()))
    monkeypatch.setenv("CORE_MODEL_NAME", "named")
    monkeypatch.setenv("CORE_MODEL_IMPLEMENTATION", "pickles")
    monkeypatch.setenv("CORE_MODEL_CONTENT_TYPE", "pd")
    [found] = find_models(folder)
    assert found.settings is not None, found.error
    assert (found.name, found.path, found.settings.implementation) == (
        "named",
        folder / "model.pkl",
        "pickles",
    )
    assert found.settings.parameters.content_type == "pd"
    # The chosen runtime's recogniser narrows the files its patterns match ...
    monkeypatch.setenv("CORE_MODEL_IMPLEMENTATION", "trees")
    (folder / "tree.txt").write_text("tree\nversion=v4\n")
    [chosen] = find_models(folder)
    assert chosen.settings is not None, chosen.error
    assert (chosen.path, chosen.settings.implementation) == (folder / "tree.txt", "trees")
    # ... but does not overrule the user: with no file it recognises, its patterns decide.
    (folder / "tree.txt").unlink()
    [several] = find_models(folder)
    assert (
        several.error is not None and "several model artifacts (model.txt, requirements.txt)" in several.error
    )
    # A runtime without artifact patterns (an import path): the CORE_MODEL_* model of before.
    monkeypatch.setenv("CORE_MODEL_IMPLEMENTATION", "mymodule.MyModel")
    [described] = find_models(folder)
    assert (described.name, described.path, described.artifact) == ("named", None, False)
