"""``loopml evaluate`` and ``loopml check``: measure a model version, then judge it.

``check`` is the CI command: it validates the data, evaluates the version, runs the gates
of the target stage and exits 0 or 1, writing a Markdown summary for a pull request.
Defaults come from the ``[check]`` table of ``loopml.toml``::

    [check]
    model = "bike-demand"          # without a URI: the newest version of this model
    data = "bikes@latest"          # the labelled evaluation data (NAME@VERSION)
    label = "cnt"
    schema = "schemas/bikes.toml"  # validate training and evaluation data against it
    stage = "production"           # whose gates to run
    slices = ["season"]
    sensitive = []
    summary = "loopml-check.md"
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.context import handled, out, print_json, state
from loopml.domain.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.client import Client

DEFAULT_SUMMARY = "loopml-check.md"


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("check")(check)


_Data = Annotated[str | None, typer.Option("--data", help="Labelled data: a dataset NAME@VERSION.")]
_Label = Annotated[str | None, typer.Option("--label", help="The label column.")]
_Slices = Annotated[
    list[str] | None, typer.Option("--slice", help="Report metrics per value of COLUMN.")
]
_Sensitive = Annotated[
    list[str] | None, typer.Option("--sensitive", help="Fairness gaps across COLUMN.")
]
_Schema = Annotated[
    Path | None, typer.Option("--schema", help="Validate the data against this schema file.")
]


def evaluate(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @ALIAS, /STAGE).")],
    data: _Data = None,
    label: _Label = None,
    slices: _Slices = None,
    sensitive: _Sensitive = None,
    schema: _Schema = None,
    importance: Annotated[
        str | None,
        typer.Option("--importance", help="Permutation importance for this metric."),
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation JSON.")] = False,
) -> None:
    """Evaluate a model version on labelled data and store the result with it."""
    with handled():
        client = state(ctx).client()
        options = _options(client, data, label, slices, sensitive, schema)
        if options["data"] is None:
            raise InvalidInput(
                "evaluate needs labelled data: pass --data NAME@VERSION (or set data in "
                "[check] of loopml.toml)"
            )
        result = client.app.evaluations.evaluate(
            uri, options.pop("data"), actor=client.actor, importance_metric=importance, **options
        )
        if html is not None:
            html.write_text(client.app.evaluations.report_html(result.record), encoding="utf-8")
    record = result.record
    if as_json:
        print_json(result.evaluation.to_dict())
        return
    out.print(f"evaluated {record.uri} on {record.dataset or 'a table'}: {record.rows:,} rows")
    for name, value in list(record.metrics.items())[:20]:
        out.print(f"  {name:<28} {value:.6g}", markup=False)
    for role, report in result.validation.items():
        out.print(f"  {role} data validation: {'passed' if report.ok else 'FAILED'}")
    if html is not None:
        out.print(f"report: {html}")


def check(
    ctx: typer.Context,
    uri: Annotated[
        str | None,
        typer.Argument(help="models:/NAME/VERSION (default: newest version of [check] model)."),
    ] = None,
    data: _Data = None,
    label: _Label = None,
    slices: _Slices = None,
    sensitive: _Sensitive = None,
    schema: _Schema = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Run the gates of this stage.")
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option(
            "--summary", help=f"Markdown file (default: {DEFAULT_SUMMARY} in the workspace)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Validate, evaluate and gate a model version; exit 1 if anything fails (for CI)."""
    from loopml.services.model_evaluation import check as run_check

    with handled():
        client = state(ctx).client()
        table = _table(client)
        options = _options(client, data, label, slices, sensitive, schema)
        target = uri or _newest(client, table.get("model"))
        verdict = run_check(
            client.app.evaluations,
            target,
            stage or table.get("stage") or "production",
            options.pop("data"),
            actor=client.actor,
            **options,
        )
        text = verdict.to_markdown()
        path = summary or client.app.root / (table.get("summary") or DEFAULT_SUMMARY)
        path.write_text(text, encoding="utf-8")
    if as_json:
        print_json(verdict.to_dict())
    else:
        out.print(text, markup=False)
        out.print(f"summary written to {path}")
    if not verdict.passed:
        raise typer.Exit(1)


def _table(client: Client) -> dict[str, Any]:
    settings = client.app.settings
    return dict(settings.check) if settings is not None else {}


def _options(
    client: Client,
    data: str | None,
    label: str | None,
    slices: list[str] | None,
    sensitive: list[str] | None,
    schema: Path | None,
) -> dict[str, Any]:
    """The evaluation options: flags first, then the [check] table."""
    from loopml.services.validation import read_schema

    table = _table(client)
    schema_path = schema or table.get("schema")
    label = label or table.get("label")
    data = data or table.get("data")
    if data is not None and label is None:
        raise InvalidInput("evaluating needs the label column: pass --label COLUMN")
    root = client.app.root
    return {
        "data": data,
        "label": label,
        "slices": slices or list(table.get("slices", [])),
        "sensitive": sensitive or list(table.get("sensitive", [])),
        "schema": None if schema_path is None else read_schema(root / Path(schema_path)),
    }


def _newest(client: Client, model: str | None) -> str:
    if model is None:
        raise InvalidInput(
            "which model? pass models:/NAME/VERSION, or set model in [check] of loopml.toml"
        )
    latest = client.app.registry.get_model(model).latest_version
    return f"models:/{model}/{latest}"
