"""``loopml quickstart``: the first loop, end to end, on the bundled bike-sharing data.

It creates a workspace, versions the data and lints it against an inferred schema, trains
a demand model on the first months of 2011, tracks the run (params, a learning curve,
metrics, the dataset version it read), registers the model
with its inferred signature, promotes it through staging to production, names it
``champion``, loads it back by alias to predict, catches a faulty serving batch with the
schema, traces the champion's lineage and verifies the audit trail. Each later
part of loopml (data versions, pipelines and gates, serving, monitoring) adds its step
here, so the quickstart stays a tour of the whole loop.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.bootstrap import init_workspace, open_workspace
from loopml.client import Client
from loopml.domain.data_schema import DataSchema
from loopml.domain.schema_file import schema_to_toml
from loopml.domain.tracking import DatasetRef

if TYPE_CHECKING:
    from rich.console import Console

MODEL_NAME = "bike-demand"
DATASET = "bike-sharing-hourly"
FEATURES_CATEGORICAL = ["season", "mnth", "hr", "weekday", "weathersit"]
FEATURES_NUMERIC = ["holiday", "workingday", "temp", "atemp", "hum", "windspeed"]
TARGET = "cnt"


def load_bikes() -> Any:
    """The bundled hourly bike-sharing data (CC BY 4.0, see loopml/data/README.md)."""
    import pandas as pd

    path = resources.files("loopml.data") / "bike_sharing_hourly.parquet"
    with resources.as_file(path) as file:
        return pd.read_parquet(file)


def build_model(alpha: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), FEATURES_CATEGORICAL),
            ("numbers", StandardScaler(), FEATURES_NUMERIC),
        ]
    )
    return Pipeline([("features", features), ("ridge", Ridge(alpha=alpha))])


def run_quickstart(path: Path | None, console: Console) -> Path:
    """Run the tour in ``path`` (a new temporary folder by default); return the workspace."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    root = Path(path) if path else Path(tempfile.mkdtemp(prefix="loopml-quickstart-"))
    step = _Steps(console)

    with step("Create a workspace"):
        settings = init_workspace(root)
        client = Client(app=open_workspace(settings))
        step.note(f"{settings.root} (SQLite metadata and artifacts in .loopml/)")

    with step("Version the bike-sharing data and lint it"):
        bikes, data, schema = _version_and_lint(client, settings.root, step)
        dates = bikes["dteday"].astype(str)
        train = bikes[(dates >= "2011-01-01") & (dates < "2011-05-01")]
        test = bikes[(dates >= "2011-05-01") & (dates < "2011-07-01")]
        step.note(
            f"{len(bikes):,} hourly rows; train Jan-Apr 2011 ({len(train):,} rows), "
            f"evaluate May-Jun 2011 ({len(test):,} rows)"
        )

    columns = FEATURES_CATEGORICAL + FEATURES_NUMERIC
    with (
        step("Train and track a run"),
        client.start_run("bike-demand", "ridge-first-months", tags={"source": "quickstart"}) as run,
    ):
        alpha = 1.0
        run.log_params(
            {
                "model": "ridge",
                "alpha": alpha,
                "features": ",".join(columns),
                "train_rows": len(train),
                "train_period": "2011-01..2011-04",
            }
        )
        run.log_inputs([DatasetRef(data.name, data.version, data.digest)])
        for fraction in (0.25, 0.5, 0.75, 1.0):  # a learning curve, one point per step
            part = train.iloc[: int(len(train) * fraction)]
            curve_model = build_model(alpha).fit(part[columns], part[TARGET])
            run.log_metric(
                "learning_curve/test_rmse",
                root_mean_squared_error(test[TARGET], curve_model.predict(test[columns])),
            )
        model = curve_model  # the last point of the curve used all training rows
        predicted = model.predict(test[columns])
        metrics = {
            "rmse": root_mean_squared_error(test[TARGET], predicted),
            "mae": mean_absolute_error(test[TARGET], predicted),
            "r2": r2_score(test[TARGET], predicted),
        }
        run.log_metrics(metrics)
        step.note(
            f"run {run.id[:12]}: rmse {metrics['rmse']:.1f}, mae {metrics['mae']:.1f}, "
            f"r2 {metrics['r2']:.3f} on unseen months"
        )

    with step("Register the model"):
        mv = client.register_model(
            model,
            MODEL_NAME,
            sample=train[columns].head(200),
            run_id=run.id,
            description="Hourly bike rentals, ridge",
        )
        assert mv.signature is not None
        step.note(
            f"{mv.uri} ({mv.flavor}, {mv.artifact.size:,} bytes, "
            f"{len(mv.signature.inputs)} input columns, stage {mv.stage.value})"
        )

    with step("Promote it: candidate -> staging -> production, alias champion"):
        client.promote(MODEL_NAME, mv.version, "staging", reason="quickstart evaluation passed")
        client.promote(
            MODEL_NAME,
            mv.version,
            "production",
            archive_existing=True,
            reason="quickstart: first production model",
        )
        client.set_alias(MODEL_NAME, "champion", mv.version)
        step.note(f"models:/{MODEL_NAME}@champion -> v{mv.version}, in production")

    with step("Load the champion back and predict"):
        _predict_with_champion(client, model, test[columns], step)

    with step("Check a serving batch against the schema"):
        _lint_serving_batch(client, test.drop(columns=[TARGET]), schema, step)

    with step("Trace the lineage of the champion"):
        for line in client.app.lineage.of_model(f"models:/{MODEL_NAME}@champion").lines():
            step.note(line)

    with step("Verify the audit trail"):
        report = client.verify_audit()
        step.note(f"{report.checked} hash-chained events, intact: {report.ok}")
    client.close()

    _print_next(console, settings.root, run.id)
    return settings.root


def _predict_with_champion(client: Client, model: Any, features: Any, step: _Steps) -> None:
    import numpy as np

    champion = client.load_model(f"models:/{MODEL_NAME}@champion")
    sample = features.head(3)
    same = np.allclose(champion.predict(sample), model.predict(sample))
    step.note(
        f"predicted {', '.join(f'{p:.0f}' for p in champion.predict(sample))} bikes "
        f"for the first hours of May 2011 (identical to the trained model: {same})"
    )


def _print_next(console: Console, root: Path, run_id: str) -> None:
    ws = f"--workspace {root}"
    console.print("\n[bold]Try next:[/]")
    for command in (
        f"loopml {ws} runs list",
        f"loopml {ws} runs show {run_id[:12]}",
        f"loopml {ws} models show {MODEL_NAME}",
        f"loopml {ws} data log {DATASET}",
        f"loopml {ws} data validate {DATASET} {root / 'data'} "
        f"--schema {root / 'schemas' / (DATASET + '.toml')}",
        f"loopml {ws} lineage models:/{MODEL_NAME}@champion",
        f"loopml {ws} audit log",
        f"loopml {ws} audit verify",
        f"loopml {ws} config show",
    ):
        console.print(f"  {command}")


def _version_and_lint(client: Client, root: Path, step: _Steps) -> tuple[Any, Any, DataSchema]:
    """Add the bundled data as a dataset version, infer its schema, validate it."""
    bikes = load_bikes()
    data_file = root / "data" / "bike_sharing_hourly.parquet"
    data_file.parent.mkdir(exist_ok=True)
    bikes.to_parquet(data_file, index=False)
    data = client.app.datasets.add_path(DATASET, data_file, client.actor, "bundled data").version
    schema = client.app.validation.infer(data.ref, label=TARGET, key=["instant"])
    schema_file = root / "schemas" / f"{DATASET}.toml"
    schema_file.parent.mkdir(exist_ok=True)
    schema_file.write_text(schema_to_toml(schema), encoding="utf-8")
    checked = client.app.validation.validate_path(data_file, schema, "training")
    step.note(f"{data.ref}: {data.rows:,} rows, {len(data.columns)} columns, {data.digest[:20]}...")
    step.note(
        f"schema inferred to {schema_file.relative_to(root)}; the data "
        f"{'passes' if checked.ok else 'fails'} it ({len(checked.findings)} findings)"
    )
    return bikes, data, schema


def _lint_serving_batch(client: Client, serving: Any, schema: DataSchema, step: _Steps) -> None:
    """A serving batch with a sensor fault: the schema catches it before any model does."""
    import pyarrow as pa

    serving.loc[serving.index[:5], "hum"] = 7.5  # humidity is a share: 0 to 1
    report = client.app.validation.validate_batches(
        iter([pa.Table.from_pandas(serving, preserve_index=False)]), schema, "serving"
    )
    for finding in report.errors:
        step.note(f"{finding.check.value} in {finding.column}: seen {finding.seen}")
    step.note("a model server would refuse this batch before it reached the model")


class _Steps:
    """Numbered steps with a spinner in a terminal and plain lines when piped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.n = 0
        self.title = ""

    def __call__(self, title: str) -> _Steps:
        self.n += 1
        self.title = title
        return self

    def __enter__(self) -> None:
        self._status = self.console.status(f"{self.n}. {self.title}...")
        self._status.__enter__()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._status.__exit__(exc_type, *rest)  # type: ignore[arg-type]
        mark = "[green]✓[/]" if exc_type is None else "[red]✗[/]"
        self.console.print(f"{mark} {self.n}. {self.title}")
        for line in getattr(self, "_notes", []):
            self.console.print(f"     {line}")
        self._notes: list[str] = []

    def note(self, text: str) -> None:
        if not hasattr(self, "_notes"):
            self._notes = []
        self._notes.append(text)
