"""The route template a REST request went to (`/v2/models/{name}/infer`):
what metrics and spans name requests by, rather than the raw path, whose
values are unbounded."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from starlette.routing import compile_path

UNMATCHED = "<unmatched>"
# Kubernetes probes: neither counted nor traced (as MLServer leaves them out
# of its metrics), they would drown the requests that matter.
PROBE_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
_CACHE_SIZE = 4096


class RouteTemplates:
    def __init__(self, app: FastAPI) -> None:
        # The documented paths: FastAPI's public view of every route, however
        # routers were included. Made now (a tenth of a second), not on the
        # first request.
        templates = app.openapi().get("paths", {})
        self._patterns = [(compile_path(template)[0], str(template)) for template in templates]
        # raw path -> template: the same few paths (one per model) come again
        # and again; bounded, since paths that match nothing are unbounded.
        self._cache: dict[str, str] = {}

    def template(self, scope: MutableMapping[str, Any]) -> str:
        """Starlette's routing puts the route in the scope; requests answered
        before it (the infer fast path) are matched here, once per path."""
        path = getattr(scope.get("route"), "path", None)
        if path is not None:
            return str(path)
        path = scope["path"]
        found = self._cache.get(path)
        if found is None:
            root = scope.get("root_path", "")
            found = self._match(path[len(root) :] if root and path.startswith(root) else path)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[path] = found
        return found

    def _match(self, path: str) -> str:
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return UNMATCHED
