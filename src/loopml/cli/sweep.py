"""``loopml sweep FILE.py:FUNCTION``: a hyperparameter search, one tracked run per trial.

The objective is a function of one trial in a Python file, loaded from the current folder
or, failing that, from the workspace folder. The file's folder is on ``sys.path`` while
the sweep runs, so the objective can import its neighbours.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.context import fmt_value, handled, out, print_json, state
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.sweep import TrialState

if TYPE_CHECKING:
    from loopml.domain.sweep import SweepResult, TrialRecord


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


def sweep(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="FILE.py:FUNCTION",
            help="The objective: a function of one trial that returns the metric's value, "
            "or (value, model).",
        ),
    ],
    trials: Annotated[int, typer.Option("--trials", "-n", help="How many trials to run.")],
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="The metric the objective returns.")
    ],
    direction: Annotated[
        str | None,
        typer.Option(help="maximize or minimize (default: inferred from a known metric name)."),
    ] = None,
    register_as: Annotated[
        str | None,
        typer.Option(
            "--register",
            metavar="MODEL",
            help="Register the best trial's model as a candidate version of MODEL.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The sweep's name (default: the function's name).")
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e")] = None,
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    seed: Annotated[int, typer.Option(help="The sampler's seed: same seed, same sweep.")] = 0,
    timeout: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Start no new trial after this many seconds."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON at the end.")] = False,
) -> None:
    """Search hyperparameters with Optuna; every trial is a run under the sweep's run."""
    from loopml.fluent import sweep as run_sweep

    with handled():
        client = state(ctx).client()
        root = client.app.settings.root if client.app.settings else Path.cwd()
        with loaded_objective(target, root) as objective:
            result = run_sweep(
                objective,
                client=client,
                name=name or _default_name(target),
                metric=metric,
                n_trials=trials,
                direction=direction,
                register_as=register_as,
                pruner=pruner,
                seed=seed,
                timeout_s=timeout,
                experiment=experiment,
                on_trial=None if as_json else _print_trial(metric),
            )
    if as_json:
        print_json(result.as_dict())
        return
    _print_summary(result)


@contextmanager
def loaded_objective(target: str, root: Path) -> Iterator[Callable[..., object]]:
    """The function ``FILE.py:FUNCTION`` names, with the file's folder on ``sys.path``."""
    path_text, colon, attr = target.rpartition(":")
    if not colon or not path_text or not attr:
        raise InvalidInput(
            f"objective {target!r} is not valid; expected FILE.py:FUNCTION, e.g. train.py:objective"
        )
    path = Path(path_text).expanduser()
    places = [path] if path.is_absolute() else [Path.cwd() / path, root / path]
    found = next((p.resolve() for p in places if p.is_file()), None)
    if found is None:
        looked = " or ".join(str(p) for p in places)
        raise NotFound(f"objective file {path_text!r} does not exist (looked for {looked})")
    if found.suffix != ".py":
        raise InvalidInput(f"objective file {str(found)!r} is not a Python file (.py)")
    module_name = "loopml_sweep_" + re.sub(r"\W", "_", found.stem)
    spec = importlib.util.spec_from_file_location(module_name, found)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot load {str(found)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(found.parent)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's file: any error is its own, report it
            raise InvalidInput(
                f"loading {str(found)!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        objective = getattr(module, attr, None)
        if objective is None:
            defined = sorted(
                n
                for n, v in vars(module).items()
                if callable(v) and getattr(v, "__module__", None) == module_name
            )
            raise NotFound(
                f"{found.name} has no function {attr!r}; it defines: "
                f"{', '.join(defined) or 'no functions'}"
            )
        if not callable(objective):
            raise InvalidInput(
                f"{found.name}:{attr} is {type(objective).__name__} {objective!r}, not a "
                "function; the objective must be a function of one trial"
            )
        yield objective
    finally:
        # Forget the file and the neighbours it imported: a later load reads them afresh.
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(folder):
                del sys.modules[name]
        sys.modules.pop(module_name, None)
        if folder in sys.path:
            sys.path.remove(folder)


def _default_name(target: str) -> str:
    """The function's name, made a valid sweep name (``_objective`` -> ``objective``)."""
    attr = target.rpartition(":")[2]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", attr).lstrip("_.-")
    return cleaned[:128] or "sweep"


def _print_trial(metric: str) -> Callable[[TrialRecord], None]:
    def show(record: TrialRecord) -> None:
        state_text = record.state.value
        if record.state is TrialState.PRUNED and record.step is not None:
            state_text += f" at step {record.step}"
        outcome = record.error if record.error else f"{metric}={_value(record.value)}"
        params = ", ".join(f"{k}={fmt_value(v)}" for k, v in record.params.items())
        out.print(
            f"trial {record.number:<3} {state_text:<18} {outcome}  {params}".rstrip(),
            markup=False,
        )

    return show


def _print_summary(result: SweepResult) -> None:
    out.print(
        f"sweep {result.name} (run {result.run_id}): {len(result.trials)} trials, "
        f"{result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed",
        markup=False,
    )
    best = result.best
    if best is None:
        out.print("no trial completed, so there is no best trial", markup=False)
        return
    params = ", ".join(f"{k}={fmt_value(v)}" for k, v in best.params.items())
    out.print(
        f"best: trial {best.number}, {result.metric}={_value(best.value)}"
        f"{', ' + params if params else ''} (run {best.run_id})",
        markup=False,
    )
    mv = result.model_version
    if mv is not None:
        out.print(f"registered {mv.uri} ({mv.stage.value})", markup=False)


def _value(value: Any) -> str:
    return "-" if value is None else fmt_value(value)
