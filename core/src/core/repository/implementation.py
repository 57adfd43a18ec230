"""Turns a model's `implementation` into its `Model` class: an import path
(`core_sklearn.SKLearnModel`), a module next to model-settings.json
(`models.MyRuntime` from `models.py`), or a plugin's alias (`sklearn`)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ..errors import ConfigurationError
from ..model import Model
from ..plugins.manager import get_plugin_manager
from ..settings import ModelSettings

# MLServer's runtimes by their class paths, as core's runtime aliases: an
# MLServer model-settings.json, and the one Seldon Core's agent writes for a
# model folder without one, is served by the core plugin of its framework.
MLSERVER_RUNTIMES = {
    "mlserver_sklearn.SKLearnModel": "sklearn",
    "mlserver_xgboost.XGBoostModel": "xgboost",
    "mlserver_lightgbm.LightGBMModel": "lightgbm",
    "mlserver_mlflow.MLflowRuntime": "mlflow",
    "mlserver_huggingface.HuggingFaceRuntime": "huggingface",
    "mlserver_alibi_detect.AlibiDetectRuntime": "alibi-detect",
}


def runtime_alias(implementation: str) -> str:
    """`implementation`, or core's alias of the MLServer runtime it names."""
    return MLSERVER_RUNTIMES.get(implementation, implementation)


def resolve_implementation(settings: ModelSettings) -> type[Model]:
    implementation = runtime_alias(settings.implementation)
    if not implementation:
        raise ConfigurationError(f"model '{settings.name}': field 'implementation' is required")
    if "." not in implementation:
        runtime = get_plugin_manager().runtime(implementation)
        if runtime is None:
            aliases = sorted(r.alias for r in get_plugin_manager().runtimes())
            raise ConfigurationError(
                f"model '{settings.name}': no installed plugin provides runtime "
                f"'{implementation}' (available: {', '.join(aliases) or 'none'})"
            )
        implementation = runtime.implementation
    module_path, _, class_name = implementation.rpartition(".")
    module = _import(module_path, settings)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ConfigurationError(f"model '{settings.name}': '{implementation}' is not a core.Model subclass")
    return cls


def _import(module_path: str, settings: ModelSettings) -> ModuleType:
    local = settings.folder.joinpath(*module_path.split(".")).with_suffix(".py")
    try:
        if settings.source is not None and local.is_file():
            return _import_file(local)
        return importlib.import_module(module_path)
    except ImportError as error:
        raise ConfigurationError(f"model '{settings.name}': cannot import '{module_path}': {error}") from None


def _import_file(path: Path) -> ModuleType:
    """Import a runtime module that lives next to its model-settings.json.
    Each folder gets its own module name, so two models may both have a
    `models.py`."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"core_local_{digest}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # Let the runtime import its sibling modules, at load and later, as MLServer allows.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
