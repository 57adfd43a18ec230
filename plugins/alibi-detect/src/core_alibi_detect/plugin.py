"""Entry point of the `core-alibi-detect` plugin. Imported by every core
process: nothing here imports alibi-detect."""

from __future__ import annotations

from core.plugins import Runtime, hookimpl

from .artifact import ALIBI_CONFIG, CORE_CONFIG, recognise


@hookimpl
def core_runtimes() -> list[Runtime]:
    return [
        Runtime(
            alias="alibi-detect",
            implementation="core_alibi_detect.AlibiDetectModel",
            description="alibi-detect drift and outlier detectors (a folder with config.toml or core-detector.json)",  # noqa: E501
            artifacts=(ALIBI_CONFIG, CORE_CONFIG),
            recognise=recognise,
            claims_folder=True,
        )
    ]
