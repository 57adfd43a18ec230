"""The `core` command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigurationError, CoreError, PortUnavailable
from ..logs import configure_logging
from ..plugins.manager import get_plugin_manager, load_import_path
from ..repository import find_models
from ..settings import (
    MODEL_SETTINGS_FILENAME,
    SETTINGS_FILENAME,
    Settings,
    build_settings,
    load_settings_file,
)
from ..storage import Fetched, fetch, is_remote
from ..storage.archives import ARCHIVE_SUFFIXES
from ..storage.metrics import record_fetch
from ..version import __version__
from . import dockerfile, infer, init

# CLI flag -> Settings field; flags override settings.json and CORE_* variables.
_OVERRIDES = {
    "host": "host",
    "http_port": "http_port",
    "grpc_port": "grpc_port",
    "metrics_port": "metrics_port",
    "log_level": "log_level",
    "log_format": "log_format",
    "parallel_workers": "parallel_workers",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="core", description="Open Inference Protocol model server.")
    parser.add_argument("--version", action="version", version=f"core {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser(
        "start", help="serve every model found in a folder, or one model artifact file"
    )
    start.add_argument(
        "path",
        help="folder holding model-settings.json files (and settings.json), or a model artifact "
        "(model.joblib, model.json, model.txt, ...) or a folder holding one; also a URI "
        "(s3://bucket/models, https://host/model.tar.gz, ...), fetched first (docs/storage.md)",
    )
    start.add_argument(
        "--implementation",
        help="runtime (alias or import path) of a model without model-settings.json, as "
        "CORE_MODEL_IMPLEMENTATION: picks the runtime when several could serve an artifact",
    )
    start.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    start.add_argument("--http-port", type=int, help="REST port (default 8080)")
    start.add_argument("--grpc-port", type=int, help="gRPC port (default 8081)")
    start.add_argument("--metrics-port", type=int, help="metrics port (default 8082)")
    start.add_argument(
        "--parallel-workers", type=int, help="worker processes (default 1; 0: models in the server process)"
    )
    start.add_argument(
        "--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    )
    start.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON objects")
    start.add_argument(
        "--on",
        metavar="ENGINE",
        help="serve the models on an engine a plugin provides instead of this process and its "
        "workers: `--on ray` (core-ray) deploys them to Ray Serve (docs/scale-out.md)",
    )

    commands.add_parser("plugins", help="list discovered plugins and what each provides")
    infer.add_parser(commands)
    init.add_parser(commands)
    dockerfile.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Arguments core does not know go to `docker build` with `core build`; elsewhere they are errors.
    args, unknown = parser.parse_known_args(argv)
    if args.command == "build":
        return dockerfile.run_build(args, unknown)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "dockerfile":
        return dockerfile.run_dockerfile(args)
    if args.command == "plugins":
        return _plugins()
    if args.command == "infer":
        return infer.run(args)
    if args.command == "init":
        return init.run(args)
    return _start(args)


def load_server_settings(path: Path, overrides: dict[str, object]) -> Settings:
    """Server settings for `core start PATH`: PATH/settings.json (none when
    PATH is an artifact file), CORE_* variables below it, flags above it."""
    values = {"model_repository_root": str(path), **overrides}
    settings_file = path / SETTINGS_FILENAME
    if path.is_dir() and settings_file.is_file():
        return load_settings_file(Settings, settings_file, **values)
    return build_settings(Settings, values, "CORE_* environment variables")


def _start(args: argparse.Namespace) -> int:
    # Set before gRPC is imported. Worker processes are spawned (fork, then
    # exec of a new interpreter) while gRPC's threads run; its fork support is
    # for children that use gRPC after a bare fork, and here only logs
    # "skipping fork() handlers" at every worker start.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    from ..server import Server

    if args.implementation:
        # The model's implementation, like any CORE_MODEL_* setting; read by
        # the repository when it builds the settings of a bare artifact.
        os.environ["CORE_MODEL_IMPLEMENTATION"] = args.implementation
    overrides = {
        field: getattr(args, flag) for flag, field in _OVERRIDES.items() if getattr(args, flag) is not None
    }
    fetched = _fetched(args.path, overrides)
    if fetched is None:
        return 2
    args.path = fetched.path
    try:
        settings = load_server_settings(args.path, overrides)
        configure_logging(settings)
    except ConfigurationError as error:
        print(f"core: {error.message}", file=sys.stderr)
        return 2
    if not _check_artifacts(args.path):
        return 2
    if args.on:
        return _launch(args.on, settings)
    try:
        server = Server(settings)
        if fetched.scheme:  # counted once the server's metrics exist
            record_fetch(fetched)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    except PortUnavailable as error:
        print(f"core: {error.message}", file=sys.stderr)
        return 1
    return 0


def _launch(engine: str, settings: Settings) -> int:
    """`core start --on ENGINE`: the plugin's launcher serves the repository."""
    launchers = {launcher.name: launcher for launcher in get_plugin_manager().launchers()}
    launcher = launchers.get(engine)
    if launcher is None:
        known = ", ".join(sorted(launchers)) or "none installed"
        hint = " (pip install core-ray)" if engine == "ray" else ""
        print(f"core: no plugin serves on '{engine}'{hint}; engines: {known}", file=sys.stderr)
        return 2
    status: int = load_import_path(launcher.run)(settings)
    return status


def _fetched(path: str, overrides: dict[str, object]) -> Fetched | None:
    """The folder or file to serve: `path`, or what its URI fetches to
    (with the storage settings of CORE_* variables and flags)."""
    if not is_remote(path):
        local = Path(path.removeprefix("file://"))
        if not local.exists():
            print(f"core: {path} does not exist", file=sys.stderr)
            return None
        return Fetched(local, "")
    try:
        settings = build_settings(Settings, dict(overrides), "CORE_* environment variables")
        configure_logging(settings)
        fetched = fetch(path, settings)
    except CoreError as error:
        print(f"core: {error.message}", file=sys.stderr)
        return None
    if fetched.path.is_dir() and not any(fetched.path.rglob(MODEL_SETTINGS_FILENAME)):
        # A bare artifact's model is named after its folder, here a cache
        # entry's: the URI's last segment instead (CORE_MODEL_NAME still wins).
        os.environ.setdefault("CORE_MODEL_NAME", _name_of(path))
    return fetched


def _name_of(uri: str) -> str:
    """`s3://bucket/models/iris.tar.gz` -> `iris`."""
    last = urlsplit(uri).path.rstrip("/").rpartition("/")[2] or urlsplit(uri).netloc
    if uri.startswith("hf://"):  # hf://ORG/MODEL@REVISION, hf://ORG/MODEL:REVISION
        last = last.partition("@")[0].partition(":")[0]
    for suffix in ARCHIVE_SUFFIXES:
        if last.lower().endswith(suffix):
            return last[: -len(suffix)]
    return last


def _check_artifacts(root: Path) -> bool:
    """A model served from a bare artifact (no model-settings.json) must have
    a runtime before the server starts: report why not and fail. Models with
    a model-settings.json keep being reported by the repository index."""
    found = find_models(root)
    for model in found:
        if model.artifact and model.error is not None:
            print(f"core: {model.error}", file=sys.stderr)
            return False
        if model.artifact and model.settings is not None:
            logging.getLogger("core").info(
                "serving %s as model '%s' with runtime '%s' (no model-settings.json)",
                model.path,
                model.name,
                model.settings.implementation,
            )
    if not found and root.is_dir():
        logging.getLogger("core").warning(
            "%s holds no model-settings.json and no model artifact an installed runtime recognises "
            "(see `core plugins`): serving no models",
            root,
        )
    return True


def _plugins() -> int:
    manager = get_plugin_manager()
    if not manager.plugins:
        print("no plugins found")
    for info in manager.plugins:
        print(f"{info.name}  ({info.distribution} {info.version})")
        if info.error:
            print(f"  FAILED to load: {info.error}")
            continue
        for runtime in info.runtimes:
            artifacts = f"  artifacts: {', '.join(runtime.artifacts)}" if runtime.artifacts else ""
            print(f"  runtime {runtime.alias}: {runtime.implementation}{artifacts}")
        if info.input_codecs:
            print(f"  input codecs: {', '.join(info.input_codecs)}")
        if info.request_codecs:
            print(f"  request codecs: {', '.join(info.request_codecs)}")
        if info.rest_routes:
            print("  REST routes")
        for storage in info.storages:
            print(
                f"  storage {', '.join(scheme + '://' for scheme in storage.schemes)}  {storage.description}"
            )
        for launcher in info.launchers:
            print(f"  serves on {launcher.name} (core start --on {launcher.name})  {launcher.description}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
