"""The schemes whose files are already on this machine: `hf://ORG/NAME`
(huggingface_hub's own cache, laid out by hand as the hub lays it out, read
offline) and `pvc://CLAIM/PATH` (a volume mounted at storage_pvc_root),
in process and, for pvc://, end to end."""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris

import core
from core.errors import ModelLoadError
from core.storage import fetch
from core.testing import ServerProcess, json_request

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = {"config.json": b'{"model_type": "tiny"}', "weights/model.bin": b"\x00\x01tiny weights"}

# --- hf:// -------------------------------------------------------------------


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    """HF_HOME with acme/tiny in its hub cache: refs/main, the snapshot's
    files as links to their blobs."""
    home = tmp_path / "hf-home"
    repository = home / "hub" / "models--acme--tiny"
    snapshot = repository / "snapshots" / COMMIT
    for name, content in FILES.items():
        blob = repository / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(COMMIT)
    return home


FETCH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import core
    from core.errors import ModelLoadError
    from core.storage import fetch

    results = []
    for uri in sys.argv[2:]:
        try:
            fetched = fetch(uri, core.Settings(storage_cache_dir=sys.argv[1]))
            results.append({"path": str(fetched.path), "scheme": fetched.scheme,
                            "downloaded": fetched.downloaded, "cache_hit": fetched.cache_hit})
        except ModelLoadError as error:
            results.append({"error": error.message})
    print(json.dumps(results))
    """
)


def fetch_offline(home: Path, tmp_path: Path, *uris: str) -> list[dict[str, Any]]:
    """fetch() each URI in a new interpreter whose environment says where the
    hub's cache is and that the hub is off limits (huggingface_hub reads
    both when it is imported)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    done = subprocess.run(
        [sys.executable, "-c", FETCH_SCRIPT, str(tmp_path / "cache"), *uris],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return results


def test_hf_uris_are_the_snapshot_folder_of_the_hubs_cache(hf_home: Path, tmp_path: Path) -> None:
    snapshot = hf_home / "hub" / "models--acme--tiny" / "snapshots" / COMMIT
    latest, pinned = fetch_offline(hf_home, tmp_path, "hf://acme/tiny", f"hf://acme/tiny@{COMMIT}")
    for result in (latest, pinned):
        assert "error" not in result, result
        path = Path(result["path"])
        assert path.resolve() == snapshot.resolve()
        assert {name: (path / name).read_bytes() for name in FILES} == FILES
        assert result["scheme"] == "hf" and result["downloaded"] == 0
    assert not (tmp_path / "cache").exists()  # the hub's cache is the cache


def test_an_hf_repository_not_in_the_cache_offline_is_an_error_naming_the_uri(
    hf_home: Path, tmp_path: Path
) -> None:
    unknown_commit = "f" * 40
    results = fetch_offline(
        hf_home, tmp_path, "hf://acme/unknown", f"hf://acme/tiny@{unknown_commit}", "hf://acme/tiny/extra"
    )
    unknown, revision, malformed = (result.get("error", "") for result in results)
    assert unknown.startswith("hf://acme/unknown: "), results
    assert revision.startswith(f"hf://acme/tiny@{unknown_commit}: "), results
    assert malformed.startswith("hf://acme/tiny/extra: ") and "hf://ORG/MODEL" in malformed, results


# --- pvc:// ------------------------------------------------------------------


def test_a_pvc_uri_is_its_path_under_the_mount_point(tmp_path: Path) -> None:
    root = tmp_path / "pvc"
    (root / "models" / "iris").mkdir(parents=True)
    (root / "models" / "iris" / "model.joblib").write_bytes(b"model")
    settings = core.Settings(storage_pvc_root=str(root), storage_cache_dir=str(tmp_path / "cache"))

    folder = fetch("pvc://claim/models/iris", settings)
    assert folder.path == (root / "models" / "iris").resolve()
    assert folder.scheme == "pvc" and folder.downloaded == 0
    artifact = fetch("pvc://claim/models/iris/model.joblib", settings)
    assert artifact.path.read_bytes() == b"model"
    assert not (tmp_path / "cache").exists()  # nothing copied

    with pytest.raises(ModelLoadError) as raised:
        fetch("pvc://claim/models/missing", settings)
    assert "pvc://claim/models/missing" in raised.value.message


@pytest.mark.parametrize(
    "uri", ["pvc://claim/../etc", "pvc://claim/models/../../etc/passwd", "pvc://claim/.."]
)
def test_a_pvc_path_that_leaves_the_mount_point_is_refused(tmp_path: Path, uri: str) -> None:
    root = tmp_path / "mnt" / "pvc"
    (root / "models").mkdir(parents=True)
    (tmp_path / "mnt" / "etc").mkdir()
    (tmp_path / "mnt" / "etc" / "passwd").write_text("root:x:0:0")
    settings = core.Settings(storage_pvc_root=str(root))
    with pytest.raises(ModelLoadError) as raised:
        fetch(uri, settings)
    assert uri in raised.value.message
    assert "leaves" in raised.value.message


def test_a_model_settings_pvc_uri_is_served(tmp_path: Path) -> None:
    pvc = tmp_path / "pvc"
    (pvc / "iris").mkdir(parents=True)
    runpy.run_path(str(EXAMPLE / "train.py"))["train"](pvc / "iris" / "model.joblib")
    estimator = joblib.load(pvc / "iris" / "model.joblib")
    values = json.loads((EXAMPLE / "model-settings.json").read_text())
    values["parameters"]["uri"] = "pvc://claim/iris/model.joblib"
    repository = tmp_path / "repository"
    (repository / "iris").mkdir(parents=True)  # no model.joblib here: only on the volume
    (repository / "iris" / "model-settings.json").write_text(json.dumps(values))
    env = {"CORE_STORAGE_PVC_ROOT": str(pvc), "CORE_STORAGE_CACHE_DIR": str(tmp_path / "cache")}

    with ServerProcess(repository, env=env) as server:
        features = load_iris().data[::10].astype(np.float32)
        response = httpx.post(
            f"{server.url}/v2/models/iris/infer", json=json_request(features, ["predict"]), timeout=60
        )
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert output["data"] == estimator.predict(features).tolist()
    assert not (tmp_path / "cache").exists()
