"""Fixtures shared by the core unit tests. Test files cannot import each
other (--import-mode=importlib), so shared helpers live here as fixtures."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from core.codecs import registry as codec_registry


@pytest.fixture(autouse=True)
def clean_core_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CORE_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CORE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to completion (pytest-asyncio is not a dependency)."""
    return asyncio.run


@pytest.fixture
def isolated_codecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Codec tables that a test may change; the real ones come back afterwards."""
    codec_registry.input_codecs()  # make sure the plugins' codecs are loaded first
    monkeypatch.setattr(codec_registry, "_input_codecs", dict(codec_registry._input_codecs))
    monkeypatch.setattr(codec_registry, "_request_codecs", dict(codec_registry._request_codecs))
    yield
