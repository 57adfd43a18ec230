"""Pydantic models of the model-repository extension."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, RootModel


class State(str, Enum):
    UNKNOWN = "UNKNOWN"
    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED = "FAILED"


class RepositoryIndexRequest(BaseModel):
    ready: bool | None = None


class RepositoryIndexResponseItem(BaseModel):
    name: str
    version: str | None = None
    state: State
    reason: str = ""


class RepositoryIndexResponse(RootModel[list[RepositoryIndexResponseItem]]):
    pass


class RepositoryLoadErrorResponse(BaseModel):
    error: str
