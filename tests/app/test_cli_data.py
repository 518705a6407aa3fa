"""``loopml data`` in-process, on a real workspace and real files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from cli_support import cli
from sklearn.linear_model import LinearRegression

from loopml.client import Client


def test_add_log_show_get_round_trip(ws: Path, tmp_path: Path) -> None:
    src = tmp_path / "bikes.csv"
    pd.DataFrame({"hr": [0, 1, 2], "cnt": [3.5, 4.0, None]}).to_csv(src, index=False)
    code, output = cli(ws, "data", "add", "bikes", str(src), "-m", "first")
    assert code == 0, output
    assert "bikes@1: 3 rows, 2 columns; stored 1 new of 1 chunks" in output
    code, output = cli(ws, "data", "add", "bikes", str(src))
    assert (code, output.strip()) == (0, "bikes@1: same content as this version; nothing stored")

    pd.DataFrame({"hr": [0, 1, 2, 3], "cnt": [3.5, 4.0, None, 1.0]}).to_csv(src, index=False)
    code, output = cli(ws, "data", "add", "bikes", str(src), "--json")
    added = json.loads(output)
    assert (added["version"], added["parent"], added["rows"], added["created"]) == (2, 1, 4, True)

    code, output = cli(ws, "data", "log", "bikes", "--json")
    assert [v["version"] for v in json.loads(output)] == [2, 1]
    code, output = cli(ws, "data", "show", "bikes@1")
    assert code == 0 and "hr" in output and "int64" in output and "message: first" in output

    dest = tmp_path / "out.parquet"
    code, output = cli(ws, "data", "get", "bikes@1", "--to", str(dest))
    assert code == 0, output
    assert pq.read_table(dest).column("cnt").to_pylist() == [3.5, 4.0, None]
    code, output = cli(ws, "data", "list", "--json")
    assert json.loads(output)[0]["latest_version"] == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["data", "show", "nope"], 3, "dataset 'nope' does not exist"),
        (["data", "show", "bikes@0"], 2, "expected NAME, NAME@latest or NAME@N"),
        (["data", "add", "bikes", "missing.csv"], 3, "missing.csv does not exist"),
        (["data", "add", "a/b", "."], 2, "dataset name 'a/b' is not valid"),
    ],
)
def test_bad_input_exits_with_its_code_and_one_clear_line(
    ws: Path, args: list[str], code: int, message: str
) -> None:
    got, output = cli(ws, *args)
    assert got == code
    assert message in output


def test_status_lists_changes_and_exits_1_until_they_are_added(ws: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_parquet(tree / "one.parquet")
    assert cli(ws, "data", "add", "t", str(tree))[0] == 0
    code, output = cli(ws, "data", "status", "t")
    assert (code, output.strip()) == (0, "t@1: no changes (1 unchanged, 0 hashed again)")
    pd.DataFrame({"a": [3]}).to_parquet(tree / "two.parquet")
    code, output = cli(ws, "data", "status", "t", "--json")
    assert code == 1
    assert json.loads(output)["added"] == ["two.parquet"]
    assert cli(ws, "data", "add", "t", str(tree))[0] == 0
    assert cli(ws, "data", "status", "t")[0] == 0


def test_schema_then_validate_is_the_data_linter_for_ci(ws: Path, tmp_path: Path) -> None:
    rows = 200
    frame = pd.DataFrame(
        {
            "id": range(rows),
            "city": ["lyon", "oslo"] * (rows // 2),
            "temp": [float(i % 30) for i in range(rows)],
            "cnt": [i % 7 for i in range(rows)],
        }
    )
    frame.to_parquet(tmp_path / "train.parquet")
    assert cli(ws, "data", "add", "bikes", str(tmp_path / "train.parquet"))[0] == 0
    schema_file = tmp_path / "bikes.toml"
    code, output = cli(ws, "data", "schema", "bikes@1", "--label", "cnt", "-o", str(schema_file))
    assert code == 0, output
    assert 'label = "cnt"' in schema_file.read_text()

    train = str(tmp_path / "train.parquet")
    code, output = cli(ws, "data", "validate", "bikes", train, "--schema", str(schema_file))
    assert code == 0, output
    assert "passed" in output

    bad = frame.drop(columns=["cnt"]).assign(city=["lyon", "<b>paris</b>"] * (rows // 2))
    bad.loc[3, "temp"] = 999.0
    bad.to_csv(tmp_path / "serve.csv", index=False)
    report = tmp_path / "report.html"
    args = ["data", "validate", "bikes", str(tmp_path / "serve.csv"), "--schema", str(schema_file)]
    code, output = cli(ws, *args, "--json", "--html", str(report))
    assert code == 1
    found = {(f["check"], f["column"]) for f in json.loads(output)["findings"]}
    assert {("label_missing", "cnt"), ("out_of_range", "temp"), ("unseen_category", "city")} <= (
        found
    )
    page = report.read_text()
    assert "&lt;b&gt;paris&lt;/b&gt;" in page and "<b>paris" not in page
    # serving data must not carry the label: without it, only the value problems remain
    code, output = cli(ws, *args, "--env", "serving", "--json")
    assert code == 1
    assert "label_missing" not in {f["check"] for f in json.loads(output)["findings"]}


def test_a_missing_or_broken_schema_file_is_named(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a\n1\n")
    code, output = cli(ws, "data", "validate", "d", str(tmp_path / "d.csv"), "--schema", "no.toml")
    assert code == 3 and "schema file no.toml does not exist" in output
    broken = tmp_path / "broken.toml"
    broken.write_text("format_version = 1\ncolumns = 3\n")
    data = str(tmp_path / "d.csv")
    code, output = cli(ws, "data", "validate", "d", data, "--schema", str(broken))
    assert code == 2 and "broken.toml" in output


def test_diff_reports_rows_and_columns(ws: Path, tmp_path: Path) -> None:
    pd.DataFrame({"id": [1, 2, 3], "v": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"id": [1, 2, 4], "v": [1.0, 2.5, 4.0], "w": ["x"] * 3}).to_parquet(
        tmp_path / "b.parquet"
    )
    cli(ws, "data", "add", "t", str(tmp_path / "a.parquet"))
    cli(ws, "data", "add", "t", str(tmp_path / "b.parquet"))
    code, output = cli(ws, "data", "diff", "t@1", "t@2", "--key", "id", "--json")
    assert code == 0, output
    found = json.loads(output)
    assert {k: found["rows"][k] for k in ("added", "removed", "changed", "unchanged")} == {
        "added": 1,
        "removed": 1,
        "changed": 1,
        "unchanged": 1,
    }
    assert found["columns"] == [{"name": "w", "change": "added", "before": None, "after": "string"}]
    code, output = cli(ws, "data", "diff", "t@1", "t@2")
    assert "rows: +2 added, -2 removed" in output
    assert "column w: added (string)" in output


def test_lineage_prints_a_tree_and_json(ws: Path) -> None:
    with Client(ws) as client, client.start_run("e") as run:
        run.log_dataset("d", pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        client.register_model(
            LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m", run_id=run.id
        )
    code, output = cli(ws, "lineage", "models:/m/1")
    assert code == 0, output
    assert output.splitlines()[0].startswith("models:/m/1  stage candidate")
    assert "dataset d@1  2 rows, 2 columns" in output
    code, output = cli(ws, "lineage", "models:/m/1", "--json")
    assert json.loads(output)["children"][0]["kind"] == "run"
    assert cli(ws, "lineage", "models:/m/9")[0] == 3


def test_gc_reports_then_deletes_with_yes(ws: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    pd.DataFrame({"a": range(5)}).to_csv(folder / "a.csv", index=False)
    (folder / "b.csv").write_text("a\n1\n2,3\n")
    assert cli(ws, "data", "add", "broken", str(folder))[0] == 2
    code, output = cli(ws, "gc", "--grace-hours", "0", "--json")
    assert (code, json.loads(output)["garbage"]) == (0, 1)
    code, output = cli(ws, "gc", "--grace-hours", "0", "--yes")
    assert code == 0 and "deleted 1 unreferenced" in output
    assert json.loads(cli(ws, "gc", "--grace-hours", "0", "--json")[1])["objects"] == 0
