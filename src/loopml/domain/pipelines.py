"""Pipelines: Python functions as steps, wired by name into a graph.

A step is a function decorated with :func:`step`. Its parameters are wired by name when
the :class:`Pipeline` is built:

* a parameter named like another step's **output** is an input from that step;
* a parameter named like one of the pipeline's **datasets** (``{"bikes": "bikes@latest"}``)
  receives that dataset version's rows;
* any other parameter is a **param**: its value comes from the pipeline's ``params``
  (``{"train": {"alpha": 0.1}}``) or else from the function's default.

A step's outputs are named by ``@step(outputs=...)``; by default a step has one output
named after the step. The pipeline refuses, naming the step: a parameter nothing provides,
an output two steps produce, a cycle (``train -> evaluate -> train``), and params that are
not JSON values (data travels as inputs, not params). Standard library only, no I/O.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, overload

from loopml.domain.datasets import parse_dataset_ref
from loopml.domain.errors import InvalidInput
from loopml.domain.names import validate_identifier

DEFAULT_SOURCE = "pipeline.py:pipeline"  # the pipeline `loopml run` runs by default

F = TypeVar("F", bound=Callable[..., Any])
_NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class Step:
    """A function with what the pipeline needs to know about it."""

    name: str
    func: Callable[..., Any]
    outputs: tuple[str, ...]
    libraries: tuple[str, ...] = ()
    cache: bool = True  # False: always run (side effects, or outputs that must be fresh)
    pickle: bool = False  # allow outputs no safe format can hold, stored with pickle
    defaults: Mapping[str, Any] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the plain function: a step stays usable (and testable) outside pipelines."""
        return self.func(*args, **kwargs)


@overload
def step(func: F, /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    libraries: Sequence[str] = (),
    cache: bool = True,
    pickle: bool = False,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    libraries: Sequence[str] = (),
    cache: bool = True,
    pickle: bool = False,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step: ``@loopml.step`` or ``@loopml.step(outputs=...)``.

    Args:
        name: the step's name (default: the function's name).
        outputs: the names of what it returns: one name, or several for a function that
            returns a tuple (in this order) or a dict (with these keys).
        libraries: distributions whose installed versions belong to the cache key
            (``["scikit-learn"]``): upgrading one re-runs the step.
        cache: ``False`` runs the step every time.
        pickle: allow outputs that only pickle can store (loading a pickle runs code;
            only for outputs this workspace produced itself).
    """

    def wrap(f: Callable[..., Any]) -> Step:
        if isinstance(f, Step):
            raise InvalidInput(f"step {f.name!r} is decorated with @step twice; keep one")
        if not callable(f) or not hasattr(f, "__name__"):
            raise InvalidInput(f"@step decorates a function, got {type(f).__name__} {f!r}")
        step_name = validate_identifier("step name", name or f.__name__)
        wanted = step_name if outputs is None else outputs
        out = _names((wanted,) if isinstance(wanted, str) else wanted)
        if not out:
            raise InvalidInput(f"step {step_name!r} must have at least one output name")
        params: list[str] = []
        defaults: dict[str, Any] = {}
        for p in inspect.signature(f).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise InvalidInput(
                    f"step {step_name!r} takes *{p.name}; a step's parameters must be named "
                    "one by one so the pipeline can wire them"
                )
            params.append(p.name)
            if p.default is not _NO_DEFAULT:
                defaults[p.name] = p.default
        return Step(
            name=step_name,
            func=f,
            outputs=out,
            libraries=tuple(libraries),
            cache=cache,
            pickle=pickle,
            defaults=MappingProxyType(defaults),
            parameters=tuple(params),
        )

    return wrap(func) if func is not None else wrap


def _names(values: Iterable[str]) -> tuple[str, ...]:
    names = tuple(validate_identifier("output name", v) for v in values)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"output names must be unique, got {twice} more than once")
    return names


@dataclass(frozen=True, slots=True)
class Wiring:
    """Where each parameter of a step comes from in one pipeline."""

    step: Step
    inputs: Mapping[str, str]  # parameter -> producing step name
    datasets: Mapping[str, str]  # parameter -> dataset reference
    params: Mapping[str, Any]  # parameter -> JSON value

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.inputs.values()))


class Pipeline:
    """Steps wired into a graph; checked when built, run by the pipeline service.

    Args:
        name: the pipeline's name (its runs are in the experiment of the same name).
        steps: the steps, in any order (the run order is topological, declaration order
            breaking ties).
        datasets: parameter name -> dataset reference (``bikes`` or ``bikes@3``).
        params: step name -> {param: value}; or ``"step.param"`` -> value.
    """

    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        datasets: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = validate_identifier("pipeline name", name)
        self.steps = tuple(steps)
        for s in self.steps:
            if not isinstance(s, Step):
                raise InvalidInput(
                    f"pipeline {name!r}: {s!r} is not a step; decorate the function with "
                    "@loopml.step"
                )
        self.datasets = dict(datasets or {})
        for param, ref in self.datasets.items():
            validate_identifier("dataset input name", param)
            parse_dataset_ref(ref)
        self.params = _step_params(params or {}, self.steps, name)
        self.wiring = self._wire()
        self.order = _topological(self.wiring, name)

    def with_params(self, params: Mapping[str, Any]) -> Pipeline:
        """A copy with ``params`` (same forms as the constructor) laid over this one's."""
        merged = {s: dict(p) for s, p in self.params.items()}
        for s, p in _step_params(params, self.steps, self.name).items():
            merged.setdefault(s, {}).update(p)
        return Pipeline(self.name, self.steps, datasets=self.datasets, params=merged)

    def upstream_of(self, name: str) -> list[str]:
        """The steps ``name`` depends on, directly or not, in run order (itself excluded)."""
        self.step(name)
        seen: set[str] = set()
        todo = [name]
        while todo:
            for up in self.wiring[todo.pop()].upstream:
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        return [s for s in self.order if s in seen]

    def downstream_of(self, name: str) -> set[str]:
        """Every step that depends on ``name``, directly or not."""
        out: set[str] = set()
        for s in self.order:
            if any(up == name or up in out for up in self.wiring[s].upstream):
                out.add(s)
        return out

    def step(self, name: str) -> Wiring:
        if name not in self.wiring:
            raise InvalidInput(
                f"pipeline {self.name!r} has no step {name!r}; its steps are: "
                f"{', '.join(self.order)}"
            )
        return self.wiring[name]

    def _wire(self) -> dict[str, Wiring]:
        producers: dict[str, str] = {}
        wiring: dict[str, Wiring] = {}
        for s in self.steps:
            if s.name in wiring:
                raise InvalidInput(
                    f"pipeline {self.name!r} has two steps named {s.name!r}; give one "
                    "@step(name=...)"
                )
            wiring[s.name] = Wiring(s, {}, {}, {})
            for out in s.outputs:
                if out in producers:
                    raise InvalidInput(
                        f"pipeline {self.name!r}: output {out!r} is produced by both step "
                        f"{producers[out]!r} and step {s.name!r}; rename one"
                    )
                if out in self.datasets:
                    raise InvalidInput(
                        f"pipeline {self.name!r}: output {out!r} of step {s.name!r} has the "
                        "name of a dataset input; rename one"
                    )
                producers[out] = s.name
        for s in self.steps:
            given = self.params.get(s.name, {})
            unknown = sorted(set(given) - set(s.parameters))
            if unknown:
                raise InvalidInput(
                    f"pipeline {self.name!r}: step {s.name!r} has no parameter "
                    f"{', '.join(map(repr, unknown))}; its parameters are: "
                    f"{', '.join(s.parameters) or 'none'}"
                )
            inputs, datasets, params = {}, {}, {}
            for p in s.parameters:
                if p in given:
                    params[p] = _json_value(given[p], f"param {p!r} of step {s.name!r}")
                elif p in producers:
                    inputs[p] = producers[p]
                elif p in self.datasets:
                    datasets[p] = self.datasets[p]
                elif p in s.defaults:
                    params[p] = _json_value(s.defaults[p], f"default of param {p!r} of {s.name!r}")
                else:
                    raise InvalidInput(
                        f"pipeline {self.name!r}: step {s.name!r} needs input {p!r}, which no "
                        f"step produces and no dataset provides (outputs: "
                        f"{', '.join(sorted(producers)) or 'none'}; datasets: "
                        f"{', '.join(sorted(self.datasets)) or 'none'}); add a step that "
                        f"returns {p!r}, a dataset named {p!r}, or give the param a value"
                    )
            wiring[s.name] = Wiring(
                s, MappingProxyType(inputs), MappingProxyType(datasets), MappingProxyType(params)
            )
        return wiring

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={list(self.order)})"


def _step_params(
    params: Mapping[str, Any], steps: Sequence[Step], pipeline: str
) -> dict[str, dict[str, Any]]:
    names = {s.name for s in steps}
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        if "." in key:
            step_name, _, param = key.partition(".")
            values = {param: value}
        elif isinstance(value, Mapping):
            step_name, values = key, dict(value)
        else:
            raise InvalidInput(
                f"pipeline {pipeline!r}: param {key!r} must be 'step.param' = value or "
                f"step = {{param: value}}, got {value!r}"
            )
        if step_name not in names:
            raise InvalidInput(
                f"pipeline {pipeline!r}: params name step {step_name!r}, which is not in the "
                f"pipeline; its steps are: {', '.join(sorted(names))}"
            )
        out.setdefault(step_name, {}).update(values)
    return out


def _json_value(value: Any, what: str) -> Any:
    """``value`` if it is plain JSON data (finite numbers); the cache key hashes it."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{what} is {type(value).__name__} {_short(value)}; params must be JSON values "
            "(numbers, text, booleans, lists, dicts): pass data as an input from a step or "
            "a dataset instead"
        ) from exc
    return json.loads(text)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _topological(wiring: Mapping[str, Wiring], pipeline: str) -> tuple[str, ...]:
    """Run order: each time, the first declared step whose inputs are all ready."""
    remaining = {name: set(w.upstream) for name, w in wiring.items()}
    order: list[str] = []
    while remaining:
        ready = next((n for n in remaining if not remaining[n]), None)
        if ready is None:
            cycle = _a_cycle(remaining)
            raise InvalidInput(
                f"pipeline {pipeline!r} has a cycle: {' -> '.join(cycle)}; a step cannot "
                "depend, directly or not, on its own output"
            )
        order.append(ready)
        del remaining[ready]
        for deps in remaining.values():
            deps.discard(ready)
    return tuple(order)


def _a_cycle(edges: Mapping[str, set[str]]) -> list[str]:
    """One cycle among ``edges`` (step -> the steps it waits for), first node repeated."""
    start = min(edges)
    path: list[str] = [start]
    while True:
        nxt = min(d for d in edges[path[-1]] if d in edges)
        if nxt in path:
            cycle = [*path[path.index(nxt) :], nxt]
            return list(reversed(cycle))  # producer -> consumer reads naturally
        path.append(nxt)


def param_text(value: Any) -> str:
    """A param value as it reads in an explanation: JSON, floats without noise."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return repr(value)
    return json.dumps(value, sort_keys=True)
