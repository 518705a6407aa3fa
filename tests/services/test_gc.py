"""Garbage collection over the in-memory app and real files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopml.adapters.memory.blobs import MemoryBlobStore
from loopml.client import Client
from loopml.domain.errors import InvalidInput


def _age_everything(blobs: MemoryBlobStore) -> None:
    for digest in blobs.modified:
        blobs.modified[digest] = 0.0


def test_a_failed_add_leaves_only_garbage_gc_can_explain_and_remove(
    client: Client, tmp_path: Path
) -> None:
    blobs = client.app.blobs
    assert isinstance(blobs, MemoryBlobStore)
    client.add_dataset("kept", pd.DataFrame({"a": range(10)}))
    with client.start_run("e") as run:
        run.log_artifact(b"notes", name="notes.txt")
    client.register_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m")

    folder = tmp_path / "bad"
    folder.mkdir()
    pd.DataFrame({"a": range(5)}).to_csv(folder / "a.csv", index=False)  # chunked, stored
    (folder / "b.csv").write_text("a\n1\n2,3\n")  # ragged: the add fails after a.csv
    with pytest.raises(InvalidInput, match=r"b\.csv"):
        client.add_dataset("broken", folder)
    assert client.app.datasets.store.find_dataset("broken") is None

    fresh = client.app.gc.collect()  # the orphan chunk is young: it could be an add in flight
    assert (fresh.garbage, fresh.young) == (0, 1)
    _age_everything(blobs)
    report = client.app.gc.collect(dry_run=True)
    assert (report.garbage, report.young, report.deleted) == (1, 0, False)
    assert report.referenced == report.objects - 1
    before = set(blobs.objects)
    done = client.app.gc.collect(dry_run=False)
    assert done.deleted and len(before - set(blobs.objects)) == 1
    # everything referenced still reads: the dataset, the run artifact, the model
    assert client.read_dataset("kept").num_rows == 10
    assert client.load_model("models:/m/1").predict([[2.0]])[0] == pytest.approx(2.0)
    assert client.app.gc.collect().garbage == 0


def test_step_outputs_and_evaluations_are_kept_by_gc(client: Client) -> None:
    from loopml.domain.pipelines import Pipeline, step
    from loopml.fluent import run_pipeline

    @step(outputs="total")
    def total(rows: pd.DataFrame) -> float:
        return float(rows["a"].sum())

    blobs = client.app.blobs
    assert isinstance(blobs, MemoryBlobStore)
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "a": [1.0, 3.0, 5.0]})
    client.add_dataset("rows", frame)
    run_pipeline(Pipeline("sum", [total], datasets={"rows": "rows"}), client=client)
    client.register_model(LinearRegression().fit(frame[["x"]], frame["a"]), "m")
    record = client.evaluate_model("models:/m/1", "rows@1", label="a").record
    _age_everything(blobs)
    report = client.app.gc.collect(dry_run=False)
    assert report.garbage == 0
    for digest in (record.evaluation, record.report):
        assert blobs.exists(digest)
    again = run_pipeline(Pipeline("sum", [total], datasets={"rows": "rows"}), client=client)
    assert again.all_hits  # the cached output survived the collection
