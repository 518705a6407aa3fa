"""``loopml data add|list|show|log|get``: versioned datasets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.context import (
    fmt_ms,
    fmt_value,
    handled,
    new_table,
    out,
    print_json,
    progress,
    state,
)

if TYPE_CHECKING:
    from loopml.domain.datasets import DatasetVersion

app = typer.Typer(help="Versioned datasets: add, list, show, log and get.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def version_dict(v: DatasetVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "ref": v.ref,
        "digest": v.digest,
        "rows": v.rows,
        "columns": [{"name": c.name, "type": c.type} for c in v.columns],
        "size": v.size,
        "source": v.source,
        "message": v.message,
        "parent": v.parent,
        "author": v.author,
        "created_ms": v.created_ms,
        "manifest": str(v.manifest),
        "profile": None if v.profile is None else str(v.profile),
    }


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. bikes.")],
    path: Annotated[Path, typer.Argument(help="A CSV or Parquet file, or a folder of them.")],
    message: Annotated[str, typer.Option("--message", "-m", help="Why this version.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Add a new version of NAME from PATH (identical content returns the existing one)."""
    with handled():
        client = state(ctx).client()
        with progress(f"adding {name}", "rows") as advance:
            result = client.app.datasets.add_path(name, path, client.actor, message, advance)
    v = result.version
    if as_json:
        print_json(
            {
                **version_dict(v),
                "created": result.created,
                "new_chunks": result.new_chunks,
                "reused_chunks": result.reused_chunks,
                "new_bytes": result.new_bytes,
            }
        )
        return
    if not result.created:
        out.print(f"{v.ref}: same content as this version; nothing stored")
        return
    chunks = result.new_chunks + result.reused_chunks
    out.print(
        f"{v.ref}: {v.rows:,} rows, {len(v.columns)} columns; stored {result.new_chunks} "
        f"new of {chunks} chunks ({result.new_bytes:,} bytes)"
        + (f", parent {v.name}@{v.parent}" if v.parent else "")
    )


@app.command("list")
def list_datasets(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Datasets and their newest version."""
    with handled():
        page = state(ctx).client().app.datasets.list_datasets(page_size=1000)
    if as_json:
        print_json(
            [
                {"name": d.name, "latest_version": d.latest_version, "created_ms": d.created_ms}
                for d in page
            ]
        )
        return
    table = new_table("dataset", "latest", "created")
    for d in page:
        table.add_row(d.name, f"v{d.latest_version}", fmt_ms(d.created_ms))
    out.print(table)
    if not page.items:
        out.print("No datasets yet: add one with `loopml data add NAME PATH`.")


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@VERSION.")],
    as_json: JsonFlag = False,
) -> None:
    """One version: rows, columns, size, where it came from, and its column profile."""
    with handled():
        datasets = state(ctx).client().app.datasets
        v = datasets.get(ref)
        profile = datasets.profile(v) if v.profile is not None else None
    if as_json:
        print_json({**version_dict(v), "profile_stats": profile.to_dict() if profile else None})
        return
    out.print(f"{v.ref}  {v.rows:,} rows  {v.size:,} bytes  {v.digest}")
    out.print(f"added {fmt_ms(v.created_ms)} by {v.author} from {v.source or '-'}")
    if v.message:
        out.print(f"message: {v.message}")
    table = new_table("column", "type", "missing", "distinct", "min", "max", "mean", "top")
    stats = {c.name: c for c in profile.columns} if profile else {}
    for c in v.columns:
        p = stats.get(c.name)
        if p is None:
            table.add_row(c.name, c.type, *["-"] * 6)
            continue
        top = ", ".join(f"{k} {n / p.count:.0%}" for k, n in p.top[:3]) if p.count else ""
        table.add_row(
            c.name,
            c.type,
            f"{p.null_fraction:.1%}",
            f"{'' if p.distinct_exact else '~'}{p.distinct:,}" if p.distinct is not None else "-",
            fmt_value(p.min) if p.min is not None else "-",
            fmt_value(p.max) if p.max is not None else "-",
            fmt_value(p.mean) if p.mean is not None else "-",
            top or "-",
        )
    out.print(table, markup=False)


@app.command("log")
def log(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Every version of NAME, newest first."""
    with handled():
        versions = list(state(ctx).client().app.datasets.log(name, page_size=1000))
    if as_json:
        print_json([version_dict(v) for v in versions])
        return
    table = new_table("version", "rows", "columns", "parent", "author", "created", "message")
    for v in versions:
        table.add_row(
            f"v{v.version}",
            f"{v.rows:,}",
            str(len(v.columns)),
            f"v{v.parent}" if v.parent else "-",
            v.author,
            fmt_ms(v.created_ms),
            v.message or "-",
        )
    out.print(table)


@app.command("get")
def get(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@VERSION.")],
    to: Annotated[Path, typer.Option("--to", help="Parquet file to write.")],
) -> None:
    """Write a version's rows to one Parquet file (each chunk's hash checked on read)."""
    with handled():
        v = state(ctx).client().app.datasets.export(ref, to)
    out.print(f"wrote {v.ref} ({v.rows:,} rows) to {to}")


@app.command("status")
def status(
    ctx: typer.Context,
    name: str,
    path: Annotated[
        Path | None, typer.Argument(help="Folder to compare (default: where NAME came from).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """What changed in a folder since the newest version of NAME (exit 1 if anything)."""
    with handled():
        found = state(ctx).data_status().status(name, path)
    if as_json:
        print_json(
            {
                "version": found.version,
                "added": found.added,
                "removed": found.removed,
                "modified": found.modified,
                "unchanged": found.unchanged,
                "rehashed": found.rehashed,
            }
        )
    else:  # plain lines: file names are text, never markup, and rich is not imported
        lines = [
            f"  {label:9} {p}\n"
            for label, paths in (
                ("added", found.added),
                ("removed", found.removed),
                ("modified", found.modified),
            )
            for p in paths
        ]
        summary = "no changes" if found.clean else "changes not added yet"
        lines.append(
            f"{name}@{found.version}: {summary} ({found.unchanged:,} unchanged, "
            f"{found.rehashed:,} hashed again)\n"
        )
        sys.stdout.write("".join(lines))
    if not found.clean:
        raise typer.Exit(1)


@app.command("schema")
def schema(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@VERSION.")],
    label: Annotated[str | None, typer.Option(help="The column a model predicts.")] = None,
    key: Annotated[
        list[str] | None, typer.Option(help="A column that identifies a row (repeatable).")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="How far ranges are widened, as a share of their width.")
    ] = 0.1,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the schema here (TOML).")
    ] = None,
) -> None:
    """Infer a schema (types, nulls, ranges, categories, key, label) to edit and commit."""
    from loopml.domain.schema_file import schema_to_toml

    with handled():
        found = state(ctx).client().app.validation.infer(ref, label, key, tolerance)
    text = schema_to_toml(found)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote the schema of {ref} ({len(found.columns)} columns) to {output}")


@app.command("validate")
def validate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset the data belongs to (for the title).")],
    path: Annotated[Path, typer.Argument(help="A CSV or Parquet file, or a folder of them.")],
    schema_file: Annotated[Path, typer.Option("--schema", help="Schema file (TOML).")],
    env: Annotated[
        str, typer.Option("--env", help="training (label required) or serving (label absent).")
    ] = "training",
    as_json: JsonFlag = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report.")
    ] = None,
) -> None:
    """Check a batch of data against a schema; exit 1 if any finding is an error."""
    from loopml.services.validation import read_schema

    with handled():
        rules = read_schema(schema_file)
        report = state(ctx).client().app.validation.validate_path(path, rules, env)
    data = report.to_dict()
    if html is not None:
        from loopml.adapters.html_reports import validation_html

        html.write_text(validation_html(data, f"{name}: {path.name}"), encoding="utf-8")
    if as_json:
        print_json(data)
    else:
        _print_report(report, name, path)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Any, name: str, path: Path) -> None:
    from rich.markup import escape  # values from the data must never be read as markup

    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    if report.findings:
        table = new_table("severity", "column", "check", "expected", "seen", "what to do")
        for f in report.findings:
            seen = f.seen + (f" (e.g. {', '.join(map(repr, f.examples))})" if f.examples else "")
            sev = f.severity.value
            table.add_row(
                f"[{styles[sev]}]{sev}[/]",
                *(escape(x) for x in (f.column or "-", f.check.value, f.expected, seen, f.hint)),
            )
        out.print(table)
    verdict = "[green]passed[/]" if report.ok else "[bold red]failed[/]"
    out.print(
        f"{escape(name)} {escape(path.name)}: {verdict} ({report.rows:,} rows, "
        f"{report.environment}): {len(report.errors)} errors, {len(report.warnings)} warnings",
        markup=True,
    )


@app.command("diff")
def diff(
    ctx: typer.Context,
    before: Annotated[str, typer.Argument(help="NAME@VERSION to compare from.")],
    after: Annotated[str, typer.Argument(help="NAME@VERSION to compare to.")],
    key: Annotated[
        list[str] | None, typer.Option(help="Columns that identify a row (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rows added, removed (and changed, by --key), columns changed, statistics moved."""
    import dataclasses

    with handled():
        found = state(ctx).client().app.datasets.diff(before, after, key or ())
    if as_json:
        print_json(dataclasses.asdict(found))
        return
    rows = found.rows
    out.print(f"{found.before} -> {found.after}")
    text = f"rows: +{rows.added:,} added, -{rows.removed:,} removed"
    if rows.key:
        text += f", ~{rows.changed:,} changed (by key {', '.join(rows.key)})"
    out.print(
        f"{text}, {rows.unchanged:,} unchanged ({rows.skipped_chunks} shared chunks not read)"
    )
    for kind, keys in rows.examples.items():
        out.print(f"  {kind}, e.g. key {' | '.join(keys)}")
    for c in found.columns:
        if c.change == "type":
            out.print(f"column {c.name}: type {c.before} -> {c.after}")
        else:
            out.print(f"column {c.name}: {c.change} ({c.before or c.after})")
    if found.moves:
        table = new_table("column", "moved", "measure", "detail")
        for m in found.moves:
            table.add_row(m.column, f"{m.score:.3g}", m.measure, m.detail)
        out.print(table)
