"""Plugin system: pluggy hooks loaded from the `core` entry-point group."""

from .hookspecs import HOOKS_VERSION, Launcher, Runtime, Storage, hookimpl, hookspec
from .manager import PluginInfo, PluginManager, get_plugin_manager

__all__ = [
    "HOOKS_VERSION",
    "Launcher",
    "PluginInfo",
    "PluginManager",
    "Runtime",
    "Storage",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
]
