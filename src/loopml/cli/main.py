"""Entry point of the ``loopml`` command; sub-command groups live in sibling modules.

A command line names one command: only the module that adds it is imported and only its
commands are built (typer builds every command it holds on each start, about 0.15 s for
all of them). Help, no command, or an unknown name build everything.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.context import State, state

# Where each command comes from, in the order they are added: (module under loopml.cli,
# attribute, the command names it adds). The attribute is ``register``, a function that
# adds the module's commands to the app, or a Typer group added under its one name.
SOURCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("workspace", "register", ("init", "quickstart", "config", "db")),
    ("monitor", "register", ("monitor", "alerts", "review", "loop", "agent")),
    ("runs", "app", ("runs",)),
    ("runs", "experiments_app", ("experiments",)),
    ("models", "app", ("models",)),
    ("approvals", "app", ("approvals",)),
    ("data", "app", ("data",)),
    ("deploy", "app", ("deploy",)),
    ("audit", "app", ("audit",)),
    ("lineage", "register", ("lineage",)),
    ("cards", "register", ("card",)),
    ("pipelines", "register", ("run", "repro")),
    ("check", "register", ("evaluate", "check")),
    ("serve", "register", ("serve",)),
    ("gc", "register", ("gc",)),
    ("sweep", "register", ("sweep",)),
    ("predictions", "register", ("predictions", "feedback")),
    ("predict", "register", ("predict",)),
)
COMMANDS = frozenset(name for _, _, names in SOURCES for name in names)
_ROOT_OPTIONS_WITH_VALUE = ("--workspace", "-w")


def root(
    ctx: typer.Context,
    workspace_path: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (default: found by walking up from here).",
            envvar="LOOPML_WORKSPACE",
        ),
    ] = None,
) -> None:
    ctx.obj = State(workspace=workspace_path)
    ctx.call_on_close(state(ctx).close)


def build(args: Sequence[str] | None = None) -> typer.Typer:
    """The ``loopml`` app for the command line ``args``: with only the command it names,
    or with every command (no ``args``, help, or a name that is no command)."""
    app = typer.Typer(
        name="loopml",
        help="loopml: track, version, register, promote and audit models: the whole loop.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,  # plain click help: renders in a third of the time
    )
    app.callback()(root)
    named = command_name(args) if args is not None else None
    for module, attribute, names in SOURCES:
        if named in COMMANDS and named not in names:
            continue
        found = getattr(importlib.import_module(f"loopml.cli.{module}"), attribute)
        if attribute == "register":
            found(app)
        else:
            app.add_typer(found, name=names[0])
    return app


def command_name(args: Sequence[str]) -> str | None:
    """The command ``args`` names (the first word after the root options), or None."""
    words = iter(args)
    for word in words:
        if word in _ROOT_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def __getattr__(name: str) -> typer.Typer:
    """``loopml.cli.main.app``: the app with every command (tests invoke it)."""
    if name == "app":
        app = build()
        globals()["app"] = app
        return app
    raise AttributeError(name)


def main() -> None:
    build(sys.argv[1:])()
