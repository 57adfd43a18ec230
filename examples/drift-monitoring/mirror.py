"""Send batches of iris measurements to the classifier and, mirrored, to its
drift detector, as a service calling the model would; then print the drift
metrics that Prometheus scrapes. The first batches come from the training
distribution, the last ones have their petals measured 1 cm too long.

    python mirror.py [URL [METRICS_URL]]
    # defaults: http://127.0.0.1:8080 and http://127.0.0.1:8082/metrics

Needs httpx, numpy and scikit-learn (for the iris data)."""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from sklearn.datasets import load_iris

SHIFT = np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)  # cm added to petal length and width


@dataclass
class Result:
    kind: str  # "normal" or "shifted"
    batch: np.ndarray
    predictions: np.ndarray  # the classifier's answer
    detection: dict[str, Any]  # the detector's outputs, by name
    metrics: dict[str, float]  # the detector's metrics, scraped after the batch


def batches(normal: int = 5, shifted: int = 3, rows: int = 30, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """`rows` random flowers of the iris data per batch; the shifted ones with SHIFT added."""
    features = load_iris().data.astype(np.float32)
    rng = np.random.default_rng(seed)
    picks = [features[rng.choice(len(features), rows, replace=False)] for _ in range(normal + shifted)]
    return [("normal", batch) for batch in picks[:normal]] + [
        ("shifted", batch + SHIFT) for batch in picks[normal:]
    ]


async def mirror(client: httpx.AsyncClient, url: str, batch: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """One batch to the classifier and the same body to the detector, at once."""
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": batch.ravel().tolist(),
            }
        ]
    }
    prediction, detection = await asyncio.gather(
        client.post(f"{url}/v2/models/iris/infer", json=body),
        client.post(f"{url}/v2/models/iris-drift/infer", json=body),
    )
    prediction.raise_for_status()
    detection.raise_for_status()
    outputs = {output["name"]: output["data"] for output in detection.json()["outputs"]}
    return np.asarray(prediction.json()["outputs"][0]["data"]), outputs


_SAMPLE = re.compile(r"^(alibi_detect_\w+)\{(.*)\} (\S+)$")


def drift_metrics(metrics_url: str, model: str = "iris-drift") -> dict[str, float]:
    """The model's `alibi_detect_*` samples from a Prometheus scrape, by
    name (with `[feature]` for per-feature ones)."""
    found: dict[str, float] = {}
    for line in httpx.get(metrics_url).text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        name, labels, value = sample.groups()
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if pairs.get("model_name") != model:
            continue
        found[f"{name}[{pairs['feature']}]" if "feature" in pairs else name] = float(value)
    return found


async def run(url: str, metrics_url: str) -> list[Result]:
    results = []
    async with httpx.AsyncClient(timeout=30) as client:
        for number, (kind, batch) in enumerate(batches(), 1):
            predictions, detection = await mirror(client, url, batch)
            metrics = drift_metrics(metrics_url)
            results.append(Result(kind, batch, predictions, detection, metrics))
            print(
                f"batch {number} ({kind}): classes {np.bincount(predictions, minlength=3).tolist()}; "
                f"detector: is_drift {detection['is_drift'][0]}, min p-value {min(detection['p_val']):.2g}; "
                f"/metrics: alibi_detect_is_drift {metrics['alibi_detect_is_drift']:g}, "
                f"alibi_detect_drifts_total {metrics['alibi_detect_drifts_total']:g}"
            )
    print(f"\nlast scrape of {metrics_url}:")
    for name, value in results[-1].metrics.items():
        print(f"  {name} {value:g}")
    return results


def main(argv: list[str]) -> None:
    url = argv[0] if argv else "http://127.0.0.1:8080"
    metrics_url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8082/metrics"
    asyncio.run(run(url.rstrip("/"), metrics_url))


if __name__ == "__main__":
    main(sys.argv[1:])
