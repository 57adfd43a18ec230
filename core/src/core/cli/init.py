"""`core init`: write a new project from the templates shipped in this
package (core/cli/templates), with no network and no template engine:

- `core init model NAME`: a model folder with a custom runtime (`models.py`),
  its `model-settings.json`, a test against a real server and a README;
- `core init plugin NAME`: a `core-NAME` plugin package (import `core_NAME`)
  with a runtime for a JSON artifact, its entry point, tests, README,
  CHANGELOG and LICENSE.

Templates are `string.Template` files (`${name}`, `$$` for a dollar sign).
"""

from __future__ import annotations

import argparse
import re
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..version import __version__

# Lower-case words joined by - or _, starting with a letter: a valid model
# name, distribution name and (with - as _) Python identifier at once.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")

# Template file (under templates/) -> the file it becomes, a format string
# over the project's values ({package}). Files in VERBATIM are copied as they are.
MODEL_FILES = {
    "model/models.py.tmpl": "models.py",
    "model/model-settings.json.tmpl": "model-settings.json",
    "model/test_model.py.tmpl": "test_model.py",
    "model/README.md.tmpl": "README.md",
}
PLUGIN_FILES = {
    "plugin/pyproject.toml.tmpl": "pyproject.toml",
    "plugin/README.md.tmpl": "README.md",
    "plugin/CHANGELOG.md.tmpl": "CHANGELOG.md",
    "plugin/LICENSE": "LICENSE",
    "plugin/gitignore.tmpl": ".gitignore",
    "plugin/__init__.py.tmpl": "src/{package}/__init__.py",
    "plugin/version.py.tmpl": "src/{package}/version.py",
    "plugin/plugin.py.tmpl": "src/{package}/plugin.py",
    "plugin/model.py.tmpl": "src/{package}/model.py",
    "plugin/artifact.py.tmpl": "src/{package}/artifact.py",
    "plugin/test_conformance.py.tmpl": "tests/test_conformance.py",
    "plugin/test_runtime.py.tmpl": "tests/test_runtime.py",
}
VERBATIM = {"plugin/LICENSE"}


class InitError(Exception):
    """A project that cannot be written: a bad name, a folder in the way."""


@dataclass(frozen=True)
class Project:
    kind: str  # "model" or "plugin"
    name: str  # as given: the model's name, or the plugin's alias
    target: Path  # the folder written

    def values(self) -> dict[str, str]:
        """What the templates may use."""
        identifier = self.name.replace("-", "_")
        return {
            "name": self.name,
            "class_name": class_name(self.name),
            "package": f"core_{identifier}",
            "distribution": f"core-{self.name}",
            "format": f"core-{self.name}/linear",  # the plugin's artifact format
            "core_requirement": core_requirement(__version__),
        }

    def files(self) -> Mapping[str, str]:
        return MODEL_FILES if self.kind == "model" else PLUGIN_FILES


def check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InitError(
            f"{name!r} is not a valid {kind} name: use lower-case letters, digits, '-' and '_', "
            "starting with a letter (e.g. 'iris' or 'my-runtime')"
        )
    if kind == "plugin" and name == "core":
        raise InitError("'core' is the core's own plugin name: choose another")


def class_name(name: str) -> str:
    """`my-linear` -> `MyLinearModel`, `my-model` -> `MyModel`."""
    words = "".join(word.capitalize() for word in re.split(r"[-_]", name))
    # "Model" alone would shadow the imported core.Model it subclasses.
    return words if words.endswith("Model") and words != "Model" else f"{words}Model"


def core_requirement(version: str) -> str:
    """The range of core releases a new plugin supports: the running core's
    minor series (`0.1.3` -> `core>=0.1,<0.2`), whose releases keep the
    plugin API."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:  # pragma: no cover  (core's own version always matches)
        raise InitError(f"cannot read core's version {version!r}")
    major, minor = int(match[1]), int(match[2])
    return f"core>={major}.{minor},<{major}.{minor + 1}"


def render(template: str, values: Mapping[str, str]) -> str:
    """A template's text with its `${...}` placeholders filled; a
    placeholder with no value is a bug of the template, raised."""
    text = resources.files(__package__).joinpath("templates").joinpath(template).read_text(encoding="utf-8")
    return text if template in VERBATIM else string.Template(text).substitute(values)


def write_project(project: Project, force: bool = False) -> list[Path]:
    """Write the project's files into `project.target`; the files written.
    A target that exists and is not empty is refused unless `force`, which
    overwrites the files of the template and leaves any other file alone."""
    check_name(project.kind, project.name)
    target = project.target
    if target.exists() and not target.is_dir():
        raise InitError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise InitError(f"{target} exists and is not empty (--force writes into it anyway)")
    values = project.values()
    # Every template is rendered before anything is written: a broken
    # template leaves no half-written project behind.
    rendered = {
        target / destination.format(**values): render(template, values)
        for template, destination in project.files().items()
    }
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(rendered)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser(
        "init", help="start a model folder with a custom runtime, or a plugin package (no network)"
    )
    kinds = init.add_subparsers(dest="kind", required=True)
    model = kinds.add_parser(
        "model", help="a model folder: models.py (a core.Model subclass), model-settings.json, a test"
    )
    plugin = kinds.add_parser(
        "plugin", help="a plugin package core-NAME (import core_NAME) with a runtime, tests and docs"
    )
    for parser, default in ((model, "./NAME"), (plugin, "./core-NAME")):
        parser.add_argument(
            "name",
            metavar="NAME",
            help="lower-case letters, digits, '-' and '_', starting with a letter; "
            + ("the model's name" if parser is model else "the runtime's alias, the package is core-NAME"),
        )
        parser.add_argument(
            "--dir", type=Path, metavar="PATH", help=f"the folder to write (default {default})"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="write into a folder that is not empty (the template's files are overwritten)",
        )


def run(args: argparse.Namespace) -> int:
    default = args.name if args.kind == "model" else f"core-{args.name}"
    project = Project(args.kind, args.name, args.dir if args.dir is not None else Path(default))
    try:
        written = write_project(project, force=args.force)
    except InitError as error:
        print(f"core: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a folder that cannot be written
        print(f"core: cannot write {project.target}: {error}", file=sys.stderr)
        return 1
    target = project.target
    print(f"wrote {args.kind} {args.name!r} in {target}:")
    for path in sorted(written):
        print(f"  {path.relative_to(target)}")
    print(f"next: see {target / 'README.md'}")
    if args.kind == "model":
        print(f"  core start {target}")
        print(f"  cd {target} && python -m pytest")
    else:
        print(f"  pip install -e '{target}[test]'")
        print(f"  cd {target} && python -m pytest")
    return 0
