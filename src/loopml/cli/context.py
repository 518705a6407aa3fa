"""What every command shares: the workspace option, the client, output and error mapping.

Errors are mapped to exit codes once, here, by class. Each code is stable so scripts and
CI can branch on it.

``loopml data status`` gets a lean service where it can (:mod:`loopml.bootstrap_lean`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.domain import errors

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from loopml.client import Client
    from loopml.services.dataset_status import DatasetStatus

EXIT_CODES: tuple[tuple[type[errors.LoopmlError], int], ...] = (
    (errors.InvalidInput, 2),
    (errors.NotFound, 3),
    (errors.AlreadyExists, 4),
    (errors.InvalidState, 5),
    (errors.IntegrityError, 6),
    (errors.StorageError, 7),
    (errors.ConfigError, 8),
    (errors.PermissionDenied, 9),
)


PIPED_WIDTH = 200

# The --trusted flag of the commands that load models (serve, predict).
Trusted = Annotated[
    bool,
    typer.Option(
        "--trusted",
        help="Also load models that run code or hold types skops does not trust by "
        "default: python_function (pickle), scikit-learn trees and custom estimators. "
        "Only for models you produced or audited.",
    ),
]


class _LazyConsole:
    """A rich Console made on first use: `loopml --help` never pays for importing rich."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console_or_new(), name)

    def _console_or_new(self) -> Console:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # In a terminal rich measures it; piped or captured output would otherwise be
            # cut to 80 columns, truncating every table cell.
            width = None if stream.isatty() else PIPED_WIDTH
            self._console = Console(
                stderr=self._stderr, highlight=False, soft_wrap=True, width=width
            )
        return self._console


out: Any = _LazyConsole(stderr=False)
err: Any = _LazyConsole(stderr=True)


def new_table(*columns: str) -> Table:
    """A borderless rich table (imported on first use)."""
    from rich.table import Table

    return Table(*columns, box=None)


def exit_code(exc: errors.LoopmlError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


@dataclass
class State:
    workspace: Path | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            from loopml.bootstrap import open_workspace
            from loopml.client import Client
            from loopml.config import load_settings

            settings = load_settings(self.workspace)
            self._client = Client(app=open_workspace(settings))
        return self._client

    def data_status(self) -> DatasetStatus:
        """The service behind ``loopml data status``: lean where it can be (see above)."""
        if self._client is None:
            from loopml.bootstrap_lean import lean_data_status  # lazy: start-up of commands
            from loopml.config import load_settings

            lean = lean_data_status(load_settings(self.workspace))
            if lean is not None:
                return lean
        return self.client().app.data_status

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = ctx.find_root().obj = State()
    return obj


@contextmanager
def handled() -> Iterator[None]:
    """Print a loopml error as one clear line and exit with its class's code."""
    try:
        yield
    except errors.LoopmlError as exc:
        from rich.markup import escape  # "[monitor.bikes]" in a message is text, not markup

        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        raise typer.Exit(exit_code(exc)) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@contextmanager
def progress(description: str, unit: str) -> Iterator[Any]:
    """A live count on stderr while long work runs; nothing when stderr is not a terminal.

    Yields ``advance(n)``, to call as work is done."""
    if not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} " + unit),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err._console_or_new(), transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda n: bar.advance(task, n)
