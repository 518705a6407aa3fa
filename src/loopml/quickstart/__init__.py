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

import contextlib
import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.bootstrap import init_workspace, open_workspace
from loopml.client import Client
from loopml.config import CONFIG_FILE, Settings, load_settings
from loopml.domain.data_schema import DataSchema
from loopml.domain.errors import InvalidState
from loopml.domain.pipelines import Pipeline
from loopml.domain.registry import ModelVersion
from loopml.domain.schema_file import schema_to_toml
from loopml.fluent import run_pipeline
from loopml.quickstart.closed_loop import (
    DEPLOYMENT,
    MONITOR,
    review_function_source,
    run_closed_loop,
    write_report,
)
from loopml.quickstart.steps import Steps
from loopml.services.model_evaluation import check
from loopml.services.pipelines import PipelineResult
from loopml.services.validation import read_schema

if TYPE_CHECKING:
    from rich.console import Console

MODEL_NAME = "bike-demand"
DATASET = "bike-sharing-hourly"  # all of it: linted, and its schema inferred
TRAIN_DATASET = "bike-train"  # what the model learns from; the retrain loop adds to it
EVAL_DATASET = "bike-sharing-eval"
PIPELINE_SOURCE = "pipeline.py:pipeline"
FEATURES_CATEGORICAL = ["season", "mnth", "hr", "weekday", "weathersit"]
FEATURES_NUMERIC = ["holiday", "workingday", "temp", "atemp", "hum", "windspeed"]
TARGET = "cnt"
MODEL_COLUMNS = [*FEATURES_CATEGORICAL, *FEATURES_NUMERIC, TARGET]


GATES = """
# Added by `loopml quickstart`: the gates of the bike-demand model (see docs/gates.md).
[gates.models.bike-demand.staging]
require_data_validation = ["training", "evaluation"]

[gates.models.bike-demand.staging.thresholds]
r2 = 0.4                                 # at least 0.4 on months the model never saw
rmse = 150.0                             # at most 150 bikes an hour

[gates.models.bike-demand.production]
require_data_validation = ["training", "evaluation"]
max_latency_p99_ms = 100                 # one-row predict, 99th percentile
max_model_size_bytes = 10_000_000

[gates.models.bike-demand.production.thresholds]
r2 = 0.4

[gates.models.bike-demand.production.champion]
rmse = { max_worse_pct = 5 }             # not more than 5% worse than the champion

[pipeline]
source = "pipeline.py:pipeline"

[check]
model = "bike-demand"
data = "bike-sharing-eval@1"          # May-Jun 2011, months the model never saw
label = "cnt"
schema = "schemas/bike-model.toml"
stage = "production"
slices = ["season"]
"""


def load_bikes() -> Any:
    """The bundled hourly bike-sharing data (CC BY 4.0, see loopml/data/README.md)."""
    import pandas as pd

    path = resources.files("loopml.data") / "bike_sharing_hourly.parquet"
    with resources.as_file(path) as file:
        return pd.read_parquet(file)


def run_quickstart(path: Path | None, console: Console) -> Path:
    """Run the tour in ``path`` (a new temporary folder by default); return the workspace."""
    root = Path(path) if path else Path(tempfile.mkdtemp(prefix="loopml-quickstart-"))
    step = Steps(console)
    started = time.perf_counter()

    with step("Create a workspace with a pipeline, its gates and a monitor"):
        settings, client = _create_workspace(root, step)

    with step("Version the bike-sharing data and lint it"):
        bikes, schema = _version_and_lint(client, settings.root, step)
        dates = bikes["dteday"].astype(str)
        train = bikes[dates < "2011-05-01"]
        test = bikes[(dates >= "2011-05-01") & (dates < "2011-07-01")]
        trained_on = client.add_dataset(TRAIN_DATASET, train[MODEL_COLUMNS], "Jan-Apr 2011")
        held_out = client.add_dataset(EVAL_DATASET, test[MODEL_COLUMNS], "May-Jun 2011, held out")
        step.note(
            f"{trained_on.version.ref}: Jan-Apr 2011 ({trained_on.version.rows:,} rows), what "
            f"the pipeline trains on; {held_out.version.ref}: May-Jun 2011 "
            f"({held_out.version.rows:,} rows) for evaluation"
        )
        (settings.root / "review.py").write_text(review_function_source(train), "utf-8")

    mv, run_id = _first_champion(client, settings.root, held_out.version.ref, schema, step)

    with step("Check a serving batch against the schema"):
        _lint_serving_batch(client, test.drop(columns=[TARGET]), step)

    with step("Write the champion's model card"):
        markdown, html = _write_card(client, settings.root, mv.uri)
        step.note(
            f"{markdown.relative_to(settings.root)} and {html.name}: data, metrics per "
            "season, gates, lineage, intended use and limitations"
        )

    features = FEATURES_CATEGORICAL + FEATURES_NUMERIC
    with contextlib.ExitStack() as serving:
        with step("Deploy the champion and serve real requests"):
            port = _serve(client, test[features], serving, step)
        loop = run_closed_loop(client, port, bikes, features, TARGET, step)

    with step("Write the monitoring report"):
        report = write_report(client, settings.root)
        step.note(f"{report.name}: drift per feature over time, performance, alerts, the loop")

    with step("Trace the lineage of the champion"):
        for line in client.app.lineage.of_model(f"models:/{MODEL_NAME}@champion").lines():
            step.note(line)

    with step("Verify the audit trail"):
        audit = client.verify_audit()
        step.note(f"{audit.checked} hash-chained events, intact: {audit.ok}")
    client.close()

    _print_summary(console, settings.root, loop, report, time.perf_counter() - started)
    _print_next(console, settings.root, run_id)
    return settings.root


def _print_summary(
    console: Console, root: Path, loop: dict[str, Any], report: Path, seconds: float
) -> None:
    run = loop.get("loop")
    console.print(f"\n[bold]The loop, closed[/] in {seconds:.0f} s:")
    console.print(
        f"  {loop.get('windows', 0)} windows judged; drifted: "
        f"{', '.join(loop.get('drifted', [])) or 'nothing'}; {loop.get('alerts', 0)} alert(s)"
    )
    if run is not None:
        console.print(
            f"  retrain loop {run.id}: {run.state.value} "
            f"(champion v{run.champion} -> candidate v{run.candidate})"
        )
        console.print(f"  {run.steps[-1].detail}", markup=False)
    console.print(f"  report: {report}", markup=False)


def _first_champion(
    client: Client, root: Path, held_out: str, schema: DataSchema, step: Steps
) -> tuple[ModelVersion, str]:
    """Run the pipeline (twice, then with a worse param), check the model for production,
    promote it; the version and the run that registered it."""
    pipeline = _load_pipeline(root)
    with step("Run the pipeline"):
        first = _run_pipeline(client, pipeline, step)
    with step("Run it again: nothing changed, so nothing runs"):
        again = _run_pipeline(client, pipeline, step)
        if again.all_hits:
            step.note(f"all {len(again.outcomes)} steps were cache hits")
    with step("Try a worse model: the gate stops it before the registry"):
        _try_worse_model(client, pipeline, step)
    registered = first.outcome("register").record
    assert registered is not None
    uri = str(client.app.pipelines.load_output(registered.outputs["registered"]))
    mv = client.get_model_version(uri)
    run_id = registered.run_id

    with step("Check it for production: validation, evaluation, gates"):
        verdict = check(
            client.app.evaluations,
            mv.uri,
            "production",
            held_out,
            label=TARGET,
            actor=client.actor,
            slices=["season"],
            schema=schema,
        )
        summary = root / "loopml-check.md"
        summary.write_text(verdict.to_markdown(), encoding="utf-8")
        step.note(f"{verdict.gates.summary()}; summary in {summary.name}")

    with step("Promote it to production, alias champion"):
        client.promote(
            MODEL_NAME,
            mv.version,
            "production",
            archive_existing=True,
            reason="quickstart: loopml check passed",
        )
        client.set_alias(MODEL_NAME, "champion", mv.version)
        step.note(f"models:/{MODEL_NAME}@champion -> v{mv.version}, in production")

    return mv, run_id


def _create_workspace(root: Path, step: Steps) -> tuple[Settings, Client]:
    """A workspace with the gates and check defaults above and the example pipeline."""
    settings = init_workspace(root)
    config = settings.root / CONFIG_FILE
    if "[gates" not in config.read_text(encoding="utf-8"):
        with config.open("a", encoding="utf-8") as handle:
            handle.write(GATES + MONITOR)
    example = resources.files("loopml.examples") / "bike_pipeline.py"
    (settings.root / "pipeline.py").write_text(example.read_text("utf-8"), "utf-8")
    settings = load_settings(settings.root)
    step.note(f"{settings.root} (SQLite metadata and artifacts in .loopml/)")
    step.note("pipeline.py: validate -> train -> evaluate -> gate -> register")
    step.note("[monitor.bikes]: windows of 720 rows, drift rule -> retrain loop with a canary")
    return settings, Client(app=open_workspace(settings))


def _try_worse_model(client: Client, pipeline: Pipeline, step: Steps) -> None:
    """Too much regularisation: the cache explains what changed, the gate refuses it."""
    worse = run_pipeline(
        pipeline.with_params({"train.alpha": 3000.0}), client=client, source=PIPELINE_SOURCE
    )
    for outcome in worse.outcomes:
        step.note(f"{outcome.step:<9} {outcome.status.value:<7} {'; '.join(outcome.reasons)}")
    refusal = worse.outcome("gate").error or "the gate passed"
    step.note(refusal.split(" (at ")[0])


CARD_SECTIONS = """\
# Model card sections of bike-demand (copied into `loopml card` output)

## Intended use

Hourly rental demand for one city's bike-sharing system, to plan how many bikes to
move between stations. Not for pricing or for other cities.

## Limitations

Trained on four months of 2011 only: it has seen neither summer nor the growth of 2012,
and it underestimates busy hours. Weather features are normalised readings from one
station.
"""


def _write_card(client: Client, root: Path, uri: str) -> tuple[Path, Path]:
    from loopml.adapters.card_files import default_sections, write_card

    sections = default_sections(root, MODEL_NAME)
    sections.parent.mkdir(parents=True, exist_ok=True)
    if not sections.exists():
        sections.write_text(CARD_SECTIONS, encoding="utf-8")
    return write_card(client.model_card(uri), root / "cards")


def _load_pipeline(root: Path) -> Pipeline:
    from loopml.adapters.python_target import load_target

    found = load_target(PIPELINE_SOURCE, root, "pipeline")
    assert isinstance(found, Pipeline)
    return found


def _run_pipeline(client: Client, pipeline: Pipeline, step: Steps) -> PipelineResult:
    result = run_pipeline(pipeline, client=client, source=PIPELINE_SOURCE)
    for outcome in result.outcomes:
        step.note(f"{outcome.step:<9} {outcome.status.value:<7} {'; '.join(outcome.reasons)}")
    if not result.ok:
        failed = next(o for o in result.outcomes if o.error)
        raise InvalidState(f"the quickstart pipeline failed: {failed.error}")
    return result


def _serve(client: Client, features: Any, serving: contextlib.ExitStack, step: Steps) -> int:
    """A deployment, the server on 127.0.0.1 (kept running by ``serving``), real HTTP
    requests (one of them wrong), the prediction log and the metrics; the port."""
    import http.client
    import json

    from loopml.server.build import serving_in_thread

    client.app.deployments.create(DEPLOYMENT, f"models:/{MODEL_NAME}@champion", client.actor)
    rows = json.loads(features.head(3).to_json(orient="records"))
    running, port = serving.enter_context(serving_in_thread(client.app))
    step.note(
        f"deployment {DEPLOYMENT} -> models:/{MODEL_NAME}@champion on http://127.0.0.1:{port}"
    )

    def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(
            "POST",
            f"/deployments/{DEPLOYMENT}/predict",
            json.dumps(body),
            {"content-type": "application/json"},
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()
        return response.status, answer

    for row in rows:
        status, answer = post({"rows": [row]})
        step.note(
            f"{status} v{answer['version']} {answer['route']}: "
            f"{answer['predictions'][0]:.0f} bikes (request {answer['request_id'][:8]})"
        )
    wrong = {k: v for k, v in rows[0].items() if k != "temp"}
    status, answer = post({"rows": [wrong]})
    step.note(f"{status}: {answer['error']}")
    metrics = running.server.metrics.text().splitlines()
    counted = next(line for line in metrics if line.startswith("loopml_requests_total{"))
    step.note(counted)
    client.app.prediction_sink.flush()
    logged = client.app.predictions.tail(DEPLOYMENT, 10)
    step.note(f"{len(logged)} answers in the prediction log (.loopml/predictions/{DEPLOYMENT}/)")
    return int(port)


def _print_next(console: Console, root: Path, run_id: str) -> None:
    ws = f"--workspace {root}"
    console.print("\n[bold]Try next[/] (in that folder, the --workspace flag is not needed):")
    for command in (
        f"cd {root} && loopml run -p train.alpha=3   # only train and what follows re-run",
        f"loopml {ws} check                          # CI: validate, evaluate, gate",
        f"loopml {ws} repro models:/{MODEL_NAME}/1",
        f"loopml {ws} runs list",
        f"loopml {ws} runs show {run_id[:12]}",
        f"loopml {ws} models show {MODEL_NAME}",
        f"loopml {ws} data log {DATASET}",
        f"loopml {ws} data validate {DATASET} {root / 'data'} "
        f"--schema {root / 'schemas' / (DATASET + '.toml')}",
        f"loopml {ws} lineage models:/{MODEL_NAME}@champion",
        f"loopml {ws} serve                      # then POST /deployments/bikes/predict",
        f"loopml {ws} predictions tail --deployment bikes",
        f"loopml {ws} deploy history bikes",
        f"loopml {ws} card models:/{MODEL_NAME}@champion",
        f"loopml {ws} audit log",
        f"loopml {ws} audit verify",
        f"loopml {ws} config show",
    ):
        console.print(f"  {command}")


def _version_and_lint(client: Client, root: Path, step: Steps) -> tuple[Any, DataSchema]:
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
    # The model's data holds only its features and label: the same rules, fewer columns.
    model_schema = replace(
        schema, columns=tuple(c for c in schema.columns if c.name in MODEL_COLUMNS), key=()
    )
    (root / "schemas" / "bike-model.toml").write_text(schema_to_toml(model_schema), "utf-8")
    step.note("schemas/bike-model.toml: its rules for the model's columns")
    return bikes, model_schema


def _lint_serving_batch(client: Client, serving: Any, step: Steps) -> None:
    """A serving batch with a sensor fault: the schema catches it before any model does."""
    import pyarrow as pa

    schema = read_schema(client.app.root / "schemas" / f"{DATASET}.toml")
    serving.loc[serving.index[:5], "hum"] = 7.5  # humidity is a share: 0 to 1
    report = client.app.validation.validate_batches(
        iter([pa.Table.from_pandas(serving, preserve_index=False)]), schema, "serving"
    )
    for finding in report.errors:
        step.note(f"{finding.check.value} in {finding.column}: seen {finding.seen}")
    step.note("a model server would refuse this batch before it reached the model")
