"""The metrics API runtimes use (register, log, the batcher's queue gauge),
and how a dead worker's multiprocess files are folded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

import core
from core.metrics import set_batch_request_queue, store
from core.metrics.families import DefaultMetrics
from core.model_context import model_context
from core.settings import ModelParameters, ModelSettings


@pytest.fixture
def fresh_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[store.MetricsStore]:
    """An in-memory store of this test's own, with core's families."""
    metrics = store.MetricsStore(None)
    metrics.defaults = DefaultMetrics(metrics.registry, "rest_server", local=True)
    monkeypatch.setattr(store, "_store", metrics)
    yield metrics


def samples(metrics: store.MetricsStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def model(name: str, version: str | None = None) -> core.Model:
    return core.Model(ModelSettings(name=name, parameters=ModelParameters(version=version)))


def test_log_records_each_kind_labelled_with_the_running_model(fresh_store: store.MetricsStore) -> None:
    core.register("rows", "Rows.", kind="counter")
    core.register("temperature", "Last temperature.", kind="gauge")
    with model_context(model("m", "2")):
        core.log(rows=3, temperature=20.5, latency=0.2)
        core.log(rows=4, temperature=19.0)
    found = samples(fresh_store)
    labels = (("model_name", "m"), ("model_version", "2"))
    assert found[("rows_total", labels)] == 7
    assert found[("temperature", labels)] == 19.0
    # Never registered: a histogram.
    assert found[("latency_count", labels)] == 1
    assert found[("latency_sum", labels)] == 0.2


def test_log_outside_a_model_call_has_empty_labels(fresh_store: store.MetricsStore) -> None:
    core.log(outside=1.0)
    assert samples(fresh_store)[("outside_count", (("model_name", ""), ("model_version", "")))] == 1


def test_register_again_returns_the_metric_and_refuses_another_kind(fresh_store: store.MetricsStore) -> None:
    first = core.register("tokens", "Tokens.", kind="counter")
    assert core.register("tokens", "Tokens again.", kind="counter") is first
    with pytest.raises(ValueError, match="already registered as a counter"):
        core.register("tokens", "Tokens.", kind="gauge")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        core.register("model_infer_request_success", "Clashes with core's own.")


def test_record_sets_a_metric_with_labels_of_its_own(fresh_store: store.MetricsStore) -> None:
    core.register("p_value", "p-value per feature.", kind="gauge", labels=["feature"])
    with model_context(model("drift", "1")):
        core.record("p_value", 0.5, feature="age")
        core.record("p_value", 0.01, feature="income")
    found = samples(fresh_store)
    labels = (("model_name", "drift"), ("model_version", "1"))
    assert found[("p_value", (("feature", "age"), *labels))] == 0.5
    assert found[("p_value", (("feature", "income"), *labels))] == 0.01
    with pytest.raises(ValueError, match=r"takes the labels \['feature'\]"):
        core.record("p_value", 0.5, column="age")
    with pytest.raises(ValueError, match=r"record its values with core\.record"):
        core.log(p_value=0.5)
    with pytest.raises(ValueError, match="already registered with labels"):
        core.register("p_value", "p-value.", kind="gauge")
    with pytest.raises(ValueError, match="not registered"):
        core.record("never_registered", 1.0, feature="age")


def test_histogram_buckets(fresh_store: store.MetricsStore) -> None:
    core.register("sizes", "Sizes.", buckets=[1, 10])
    with model_context(model("m")):
        core.log(sizes=5)
    found = samples(fresh_store)
    labels = (("le", "10.0"), ("model_name", "m"), ("model_version", ""))
    assert found[("sizes_bucket", labels)] == 1


def test_batch_request_queue(fresh_store: store.MetricsStore) -> None:
    set_batch_request_queue("m", "1", 4)
    set_batch_request_queue("m", "1", 2)
    set_batch_request_queue("n", None, 1)
    found = samples(fresh_store)
    assert found[("batch_request_queue", (("model_name", "m"), ("model_version", "1")))] == 2
    assert found[("batch_request_queue", (("model_name", "n"), ("model_version", "")))] == 1


def write_values(path: Path, values: dict[str, float]) -> None:
    mapped = MmapedDict(str(path))
    for key, value in values.items():
        mapped.write_value(key, value, 0.0)
    mapped.close()


def test_a_dead_process_counters_are_folded_and_its_files_removed(tmp_path: Path) -> None:
    metrics = store.MetricsStore(tmp_path)
    metrics.expose()
    labels = (["model_name"], ["m"])
    counter = mmap_key("requests", "requests_total", *labels, "Requests.")
    gauge = mmap_key("queued", "queued", *labels, "Queued.")
    write_values(tmp_path / "counter_101.db", {counter: 3})
    write_values(tmp_path / "counter_102.db", {counter: 4})
    write_values(tmp_path / "gauge_livesum_101.db", {gauge: 5})
    write_values(tmp_path / "gauge_livesum_102.db", {gauge: 1})

    def values() -> dict[str, float]:
        text = metrics.render()[0].decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name in ("requests_total", "queued")
        }

    assert values() == {"requests_total": 7, "queued": 6}
    metrics.process_exited(101)
    metrics.process_exited(101)  # twice: nothing left to fold
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "counter_102.db",
        "counter_archive.db",
        "gauge_livesum_102.db",
    ]
    assert values() == {"requests_total": 7, "queued": 1}
    metrics.process_exited(102)
    assert values() == {"requests_total": 7}


def test_a_worker_s_core_metrics_reach_its_files_at_each_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a worker: core's families are plain numbers, mirrored in
    # prometheus_client multiprocess values that only `flush` writes.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    metrics = store.MetricsStore(tmp_path)
    metrics.defaults = DefaultMetrics(CollectorRegistry(), "rest_server", local=True)
    metrics.mirror = DefaultMetrics(metrics.registry, "rest_server")
    metrics.expose()
    recorded = metrics.defaults
    labels = ("m", "1")

    def scraped() -> dict[tuple[str, str], float]:
        text = metrics.render()[0].decode()
        return {
            (sample.name, sample.labels.get("le", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.labels.get("model_name") == "m"
        }

    recorded.infer_success.labels(*labels).inc()
    recorded.infer_success.labels(*labels).inc()
    recorded.predict.labels(*labels).observe(0.003)
    recorded.predict.labels(*labels).observe(20.0)
    recorded.batch_queue.labels(*labels).set(4)
    assert scraped() == {}  # nothing in the files before a flush
    metrics.flush()
    first = scraped()
    assert first[("model_infer_request_success_total", "")] == 2
    assert first[("request_predict_seconds_count", "")] == 2
    assert first[("request_predict_seconds_sum", "")] == pytest.approx(20.003)
    assert first[("request_predict_seconds_bucket", "0.005")] == 1
    assert first[("request_predict_seconds_bucket", "10.0")] == 1
    assert first[("request_predict_seconds_bucket", "+Inf")] == 2
    assert first[("batch_request_queue", "")] == 4

    recorded.infer_success.labels(*labels).inc()
    recorded.predict.labels(*labels).observe(0.003)
    recorded.batch_queue.labels(*labels).set(1)
    metrics.flush()
    metrics.flush()  # twice: only what changed since the last one is added
    second = scraped()
    assert second[("model_infer_request_success_total", "")] == 3
    assert second[("request_predict_seconds_count", "")] == 3
    assert second[("request_predict_seconds_bucket", "0.005")] == 2
    assert second[("request_predict_seconds_sum", "")] == pytest.approx(20.006)
    assert second[("batch_request_queue", "")] == 1
