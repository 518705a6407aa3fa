"""Lineage over the in-memory app: model version -> run -> datasets (-> parents), code."""

from __future__ import annotations

import pyarrow as pa
from sklearn.linear_model import LinearRegression

from loopml.client import Client
from loopml.domain.tracking import DatasetRef


def _model() -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])


def test_lineage_goes_from_the_version_through_its_run_to_data_and_its_parents(
    client: Client,
) -> None:
    client.add_dataset("bikes", pa.table({"a": [1, 2]}))
    with client.start_run("e", "train") as run:
        used = run.log_dataset("bikes", pa.table({"a": [1, 2, 3]}))
    mv = client.register_model(_model(), "m", run_id=run.id)
    tree = client.app.lineage.of_model(mv.uri)
    assert (tree.kind, tree.id) == ("model_version", "models:/m/1")
    [run_node] = tree.children
    assert (run_node.kind, run_node.id) == ("run", f"runs:/{run.id}")
    [data_node] = [c for c in run_node.children if c.kind == "dataset_version"]
    assert data_node.id == f"datasets:/bikes/{used.version}" == "datasets:/bikes/2"
    assert [p.id for p in data_node.children] == ["datasets:/bikes/1"]
    text = "\n".join(tree.lines())
    assert "└── run" in text and "dataset bikes@2  3 rows" in text
    assert tree.to_dict()["children"][0]["id"] == f"runs:/{run.id}"


def test_a_broken_trail_is_shown_as_missing_not_hidden(client: Client) -> None:
    with client.start_run("e") as run:
        run.log_inputs([DatasetRef("elsewhere", 4, "blake2b:00")])
    mv = client.register_model(_model(), "m", run_id=run.id)
    [run_node] = client.app.lineage.of_model(mv.uri).children
    [data_node] = [c for c in run_node.children if c.kind == "dataset_version"]
    assert data_node.missing and "elsewhere@4  (missing)" in data_node.label
