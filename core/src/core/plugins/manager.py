"""Discovers plugins from the `core` entry-point group and answers what they
provide. A plugin that fails to import is recorded with its reason and
skipped, so one broken package never stops the server."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

import pluggy

from . import hookspecs
from .hookspecs import PROJECT, Launcher, Runtime, Storage

logger = logging.getLogger(__name__)


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    runtimes: list[Runtime] = field(default_factory=list)
    input_codecs: list[str] = field(default_factory=list)
    request_codecs: list[str] = field(default_factory=list)
    rest_routes: bool = False
    storages: list[Storage] = field(default_factory=list)
    launchers: list[Launcher] = field(default_factory=list)
    error: str | None = None


class PluginManager:
    def __init__(self, load_entry_points: bool = True) -> None:
        self._pluggy = pluggy.PluginManager(PROJECT)
        self._pluggy.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        if load_entry_points:
            for entry_point in sorted(entry_points(group=PROJECT), key=_load_order):
                self._load(entry_point)

    def _load(self, entry_point: EntryPoint) -> None:
        distribution = entry_point.dist.name if entry_point.dist else "?"
        version = entry_point.dist.version if entry_point.dist else "?"
        info = PluginInfo(entry_point.name, distribution, version)
        self.plugins.append(info)
        try:
            plugin = entry_point.load()
            self._describe(info, plugin)
            self._pluggy.register(plugin, name=entry_point.name)
        except Exception as error:  # any import-time failure of third-party code
            info.error = f"{type(error).__name__}: {error}"
            logger.warning("plugin '%s' (%s) skipped: %s", info.name, distribution, info.error)

    def register(self, plugin: Any, name: str, distribution: str = "", version: str = "") -> None:
        """Register a plugin object by hand (tests, embedding applications)."""
        info = PluginInfo(name, distribution or name, version)
        self._describe(info, plugin)
        self._pluggy.register(plugin, name=name)
        self.plugins.append(info)

    @staticmethod
    def _describe(info: PluginInfo, plugin: Any) -> None:
        if hasattr(plugin, "core_runtimes"):
            info.runtimes = list(plugin.core_runtimes())
        if hasattr(plugin, "core_codecs"):
            from ..codecs.base import RequestCodec

            for codec in plugin.core_codecs():
                kind = info.request_codecs if issubclass(codec, RequestCodec) else info.input_codecs
                kind.append(codec.ContentType)
        info.rest_routes = hasattr(plugin, "core_rest_routers")
        if hasattr(plugin, "core_storage"):
            info.storages = list(plugin.core_storage())
        if hasattr(plugin, "core_launchers"):
            info.launchers = list(plugin.core_launchers())

    def runtimes(self) -> list[Runtime]:
        return [runtime for batch in self._pluggy.hook.core_runtimes() for runtime in batch]

    def runtime(self, alias: str) -> Runtime | None:
        return next((r for r in self.runtimes() if r.alias == alias), None)

    def rest_routers(self, dataplane: Any, settings: Any) -> list[Any]:
        """The plugins' extra REST routers; a plugin whose hook fails is
        logged and skipped."""
        routers: list[Any] = []
        for implementation in self._pluggy.hook.core_rest_routers.get_hookimpls():
            try:
                provided = implementation.function(dataplane=dataplane, settings=settings)
                routers.extend(cast("list[Any] | None", provided) or ())
            except Exception:  # a plugin's bug must not stop the server
                logger.exception("plugin '%s' failed to provide its REST routes", implementation.plugin_name)
        return routers

    def storages(self) -> list[Storage]:
        return [storage for batch in self._pluggy.hook.core_storage() for storage in batch]

    def launchers(self) -> list[Launcher]:
        return [launcher for batch in self._pluggy.hook.core_launchers() for launcher in batch]

    def codecs(self) -> list[Any]:
        # pluggy calls the last registered first; reverse so the core's own come first.
        return [codec for batch in reversed(self._pluggy.hook.core_codecs()) for codec in batch]


def load_import_path(path: str) -> Any:
    """The object an import path of a hook's description names
    ("core.storage.s3:open_s3", "core_ray.launcher:run"); importing its
    module may raise ImportError."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _load_order(entry_point: EntryPoint) -> tuple[bool, str]:
    # The core's built-ins first, then plugins by name, for a stable listing.
    return (entry_point.name != PROJECT, entry_point.name)


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager
