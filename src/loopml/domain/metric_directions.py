"""Metric names and directions: which way each metric gets better, and how names are built.

Names: a plain metric (``accuracy``, or a custom ``val/rmse``); a metric in a slice of the
rows, ``slice:<slice>/<metric>`` (``slice:region=eu/accuracy``, or a named mask such as
``slice:weekend/rmse``); a fairness measure across the groups of a sensitive column,
``fairness:<column>/<measure>``, or a bare measure. These are the names
``loopml.domain.evaluation`` gives its results.

Directions: :data:`KNOWN_DIRECTIONS` covers the usual metrics and fairness measures;
:class:`MetricDirections` adds the ones a gate policy declares. A name that is not known
itself takes the direction of its metric part, then of its last ``/`` segment, so
``slice:region=eu/rmse`` and ``val/rmse`` are lower-is-better like ``rmse``. A name with no
direction at all is an error naming it, which also catches misspelt metrics early.
Standard library only, no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from loopml.domain.errors import InvalidInput

SLICE = "slice"
FAIRNESS = "fairness"


class Direction(StrEnum):
    """Which way a metric gets better; ``NONE`` for a metric best near a target (``bias``),
    which only absolute ``{ min, max }`` bounds can use."""

    HIGHER = "higher"
    LOWER = "lower"
    NONE = "none"

    @property
    def phrase(self) -> str:
        return "neither way is better" if self is Direction.NONE else f"{self.value} is better"


_H, _L, _N = Direction.HIGHER, Direction.LOWER, Direction.NONE
FAIRNESS_MEASURES: Mapping[str, Direction] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "demographic_parity_difference",
                "equalized_odds_difference",
                "accuracy_difference",
                "mean_prediction_difference",
                "mae_difference",
                "group_mean_prediction_difference",
                "group_mae_difference",
            ),
            _L,
        ),
        "demographic_parity_ratio": _H,
        "equalized_odds_ratio": _H,
    }
)
KNOWN_DIRECTIONS: Mapping[str, Direction] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "accuracy",
                "balanced_accuracy",
                "precision",
                "recall",
                "f1",
                "precision_macro",
                "recall_macro",
                "f1_macro",
                "f1_micro",
                "f1_weighted",
                "roc_auc",
                "pr_auc",
                "average_precision",
                "matthews_corrcoef",
                "cohen_kappa",
                "r2",
                "explained_variance",
            ),
            _H,
        ),
        **dict.fromkeys(
            (
                "rmse",
                "mse",
                "mae",
                "median_absolute_error",
                "max_error",
                "mape",
                "log_loss",
                "brier",
                "brier_score",
                "ece",
            ),
            _L,
        ),
        # Best near zero, or a matter of policy: bounded by { min, max } only.
        **dict.fromkeys(("bias", "positive_rate"), _N),
        **FAIRNESS_MEASURES,
    }
)


def split_name(name: str) -> tuple[str | None, str | None, str]:
    """Split a metric name into ``(scope, group, metric)``.

    ``slice:region=eu/accuracy`` is ``("slice", "region=eu", "accuracy")``,
    ``fairness:sex/demographic_parity_difference`` is ``("fairness", "sex", ...)`` and a
    plain name such as ``accuracy`` (or ``val/rmse``) is ``(None, None, name)``. The metric
    of a scoped name starts after the last ``/``: a slice's value may hold ``/``.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"a metric name must be non-empty text, got {name!r}")
    for scope in (SLICE, FAIRNESS):
        if name.startswith(f"{scope}:"):
            group, slash, metric = name[len(scope) + 1 :].rpartition("/")
            if not group or not slash or not metric:
                example = "slice:region=eu/accuracy" if scope == SLICE else _FAIRNESS_EXAMPLE
                raise InvalidInput(
                    f"metric name {name!r} is not valid; expected {scope}:<"
                    f"{'slice' if scope == SLICE else 'column'}>/<metric>, e.g. {example!r}"
                )
            return scope, group, metric
    return None, None, name


_FAIRNESS_EXAMPLE = "fairness:sex/demographic_parity_difference"


def slice_metric_name(slice_name: str, metric: str) -> str:
    """The name of ``metric`` in a slice, e.g. ``slice_metric_name("region=eu", "f1")``."""
    return f"{SLICE}:{slice_name}/{metric}"


@dataclass(frozen=True, slots=True)
class MetricDirections:
    """The built-in directions plus those a policy declares for its own metrics."""

    declared: Mapping[str, Direction] = field(default_factory=dict)

    def __post_init__(self) -> None:
        declared: dict[str, Direction] = {}
        for name, raw in dict(self.declared).items():
            if not isinstance(name, str) or not name.strip():
                raise InvalidInput(f"a metric name must be non-empty text, got {name!r}")
            direction = _direction(raw, name)
            known = KNOWN_DIRECTIONS.get(name)
            if known is not None and known is not direction:
                raise InvalidInput(
                    f"{name} = {direction.value!r} contradicts the built-in direction of "
                    f"{name} ({known.phrase}); remove the declaration, or name your own "
                    "metric differently"
                )
            declared[name] = direction
        object.__setattr__(self, "declared", MappingProxyType(declared))

    def find(self, name: str) -> Direction | None:
        """The direction of ``name``, or ``None`` when neither known nor declared.

        A name that is not known itself takes the direction of its metric part, then of
        its last ``/`` segment: ``slice:region=eu/rmse`` and ``val/rmse`` are like ``rmse``.
        """
        metric = split_name(name)[2]
        for candidate in (name, metric, metric.rpartition("/")[2]):
            found = self.declared.get(candidate) or KNOWN_DIRECTIONS.get(candidate)
            if found is not None:
                return found
        return None

    def of(self, name: str) -> Direction:
        """The direction of ``name``; :class:`InvalidInput` naming it when unknown."""
        found = self.find(name)
        if found is None:
            raise InvalidInput(self.unknown_message(name))
        return found

    def is_fairness(self, name: str) -> bool:
        """Whether ``name`` is a fairness measure, bare or across a column: a built-in
        measure, or a name the policy declared (that is not a built-in metric)."""
        scope, _, measure = split_name(name)
        if scope == SLICE:
            return False
        return measure in FAIRNESS_MEASURES or (
            measure in self.declared and measure not in KNOWN_DIRECTIONS
        )

    def problem(self, section: str, name: str) -> str | None:
        """Why ``name`` cannot be used in a policy ``section``, or ``None`` when it can."""
        fairness = section == "fairness"
        direction = self.find(name)
        if direction is None:
            return self.unknown_message(name, list(FAIRNESS_MEASURES) if fairness else None)
        if fairness and not self.is_fairness(name):
            return (
                f"{name!r} is not a fairness measure; expected one of "
                f"{', '.join(FAIRNESS_MEASURES)}, alone or as fairness:<column>/<measure> "
                "(or a name declared under [gates.directions]). Bound model metrics under "
                "thresholds"
            )
        if section == "thresholds" and self.is_fairness(name) and name not in self.declared:
            return f"{name!r} is a fairness measure; bound it under fairness instead"
        if section in ("champion", "slices") and direction is Direction.NONE:
            return (
                f"{name!r} has no better direction ({direction.phrase}), so it cannot be "
                "compared with the champion; bound it with { min = ..., max = ... } under "
                "thresholds"
            )
        return None

    def unknown_message(self, name: str, choices: Sequence[str] | None = None) -> str:
        pool = list(choices) if choices is not None else [*KNOWN_DIRECTIONS, *self.declared]
        base = split_name(name)[2]
        close = difflib.get_close_matches(base, pool, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close and close[0] != base else ""
        return (
            f"metric {name!r} has no known direction{guess}; declare it under "
            f'[gates.directions], e.g. "{base}" = "higher" (or "lower"), or fix the spelling'
        )


def _direction(value: object, name: str) -> Direction:
    if isinstance(value, str) and value in {d.value for d in Direction}:
        return Direction(value)
    raise InvalidInput(
        f"the direction of {name!r} must be 'higher' or 'lower' (which way is better), or "
        f"'none' (a metric bounded by min and max only), got {value!r}"
    )


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` most likely misspells: a close spelling, a prefix, or the first
    choice sharing a ``_``-separated part (``worse_by`` -> ``max_worse``); else ``None``."""
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return close[0]
    typed = word.strip().lower()
    prefixed = [c for c in choices if typed and c.startswith(typed)]
    if prefixed:
        return prefixed[0]
    parts = {p for p in typed.split("_") if len(p) > 2}
    shared = [c for c in choices if parts & set(c.split("_"))]
    return shared[0] if shared else None
