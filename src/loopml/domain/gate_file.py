"""The gate policy file: a ``[gates]`` table in TOML, read with :mod:`tomllib`.

The policy lives in a ``[gates]`` table wherever it is kept: in the workspace's
``loopml.toml`` beside the settings, or alone in a file of its own. :func:`policy_from_toml`
reads it from a whole document (other top-level tables are settings, not its business);
:func:`policy_from_mapping` reads an already parsed ``[gates]`` table. Every mistake is
refused with the file name, the TOML key path (``gates.default.production.thresholds.rmse``),
what was expected and the value found. :func:`policy_to_toml` writes a policy back as
commented TOML that reads back equal. The format is described in ``docs/gates.md``.

Standard library only, no I/O: the caller reads and writes the text.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from loopml.domain.errors import InvalidInput
from loopml.domain.gates import (
    FORMAT_VERSION,
    GatePolicy,
    Limit,
    Margin,
    RelativeRule,
    StagePolicy,
    gated_stage,
    toml_key,
)
from loopml.domain.lifecycle import Stage
from loopml.domain.metric_directions import (
    Direction,
    MetricDirections,
    split_name,
)
from loopml.domain.names import validate_identifier
from loopml.domain.toml_reader import TomlReader

POLICY_KEYS = ("format_version", "directions", "default", "models")
STAGE_KEYS = (
    "thresholds",
    "champion",
    "slices",
    "fairness",
    "require_data_validation",
    "max_latency_p99_ms",
    "max_model_size_bytes",
    "require_approval",
    "allow_self_approval",
)
LIMIT_KEYS = ("min", "max")
MARGIN_KEYS = tuple(m.value for m in Margin)
SLICE_MARGIN_KEYS = (Margin.MAX_WORSE.value, Margin.MAX_WORSE_PCT.value)
_DOCS = "docs/gates.md"


def policy_from_toml(text: str, source_name: str) -> GatePolicy:
    """Read the ``[gates]`` table of a TOML document; no table is an empty policy.

    Args:
        text: the TOML text (``loopml.toml``, or a file holding only ``[gates]``).
        source_name: where the text came from (usually the file path), named in errors.

    Raises:
        InvalidInput: the text is not TOML, or the policy has an unknown key (with the
            closest known one), a value of the wrong type, a bound that lets nothing pass,
            a metric of unknown direction, a stage gates cannot guard... The message names
            ``source_name`` and the key path.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source_name}: not valid TOML: {exc}; fix the syntax there") from exc
    if "gates" not in data:
        stray = [key for key in data if key in POLICY_KEYS]
        if stray:
            raise InvalidInput(
                f"{source_name}: {', '.join(map(repr, stray))} must be inside the [gates] "
                "table; start the policy with a [gates] line and prefix its tables with "
                "gates. (e.g. [gates.default.production])"
            )
        return GatePolicy()
    gates = data["gates"]
    if not isinstance(gates, dict):
        _Reader(source_name).fail("gates", "a table, written [gates]", gates)
    return policy_from_mapping(gates, source_name)


def policy_from_mapping(table: Mapping[str, Any], source_name: str) -> GatePolicy:
    """Read an already parsed ``[gates]`` table (see :func:`policy_from_toml`)."""
    reader = _Reader(source_name)
    reader.check_keys(table, POLICY_KEYS, "gates")
    version = table.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        reader.fail("gates.format_version", f"an integer such as {FORMAT_VERSION}", version)
    directions = reader.directions(table.get("directions", {}))
    default = reader.stages(table.get("default", {}), "gates.default", directions)
    models = {}
    for name, stages in reader.table(table.get("models", {}), "gates.models").items():
        path = f"gates.models.{toml_key(name)}"
        reader.wrap(path, validate_identifier, "model name", name)
        models[name] = reader.stages(stages, path, directions)
    try:
        return GatePolicy(default, models, directions, version)
    except InvalidInput as exc:
        raise InvalidInput(f"{source_name}: {exc}") from exc


class _Reader(TomlReader):
    """Type checks of the parsed TOML, with messages naming the file and the key path."""

    def __init__(self, source_name: str) -> None:
        super().__init__(source_name, _DOCS)

    def directions(self, raw: object) -> MetricDirections:
        table = self.table(raw, "gates.directions")
        for name, value in table.items():
            if value not in [d.value for d in Direction]:
                self.fail(
                    f"gates.directions.{toml_key(name)}",
                    '"higher" or "lower" (which way the metric gets better)',
                    value,
                )
        return self.wrap(  # type: ignore[no-any-return]
            "gates.directions", MetricDirections, {k: Direction(v) for k, v in table.items()}
        )

    def stages(
        self, raw: object, path: str, directions: MetricDirections
    ) -> dict[Stage, StagePolicy]:
        stages = {}
        for name, policy in self.table(raw, path).items():
            stage = self.wrap(f"{path}.{toml_key(name)}", gated_stage, name)
            stages[stage] = self.stage(policy, f"{path}.{stage.value}", directions)
        return stages

    def stage(self, raw: object, path: str, directions: MetricDirections) -> StagePolicy:
        table = self.table(raw, path)
        self.check_keys(table, STAGE_KEYS, path)
        roles = table.get("require_data_validation", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            self.fail(
                f"{path}.require_data_validation",
                'a list of data roles, e.g. ["training", "evaluation"]',
                roles,
            )
        latency = table.get("max_latency_p99_ms")
        if latency is not None and (isinstance(latency, bool) or not _is_number(latency)):
            self.fail(f"{path}.max_latency_p99_ms", "a number of milliseconds, e.g. 50", latency)
        size = table.get("max_model_size_bytes")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            self.fail(
                f"{path}.max_model_size_bytes", "a whole number of bytes, e.g. 50_000_000", size
            )
        flags = {}
        for key in ("require_approval", "allow_self_approval"):
            flags[key] = table.get(key, False)
            if not isinstance(flags[key], bool):
                self.fail(f"{path}.{key}", "true or false", flags[key])
        thresholds = self.limits(table.get("thresholds"), f"{path}.thresholds", directions)
        champion = self.relatives(table.get("champion"), f"{path}.champion")
        slices = self.relatives(table.get("slices"), f"{path}.slices", per_slice=True)
        fairness = self.limits(table.get("fairness"), f"{path}.fairness", directions, fairness=True)
        return self.wrap(  # type: ignore[no-any-return]
            path,
            lambda: StagePolicy(
                thresholds=thresholds,
                champion=champion,
                slices=slices,
                fairness=fairness,
                require_data_validation=tuple(roles),
                max_latency_p99_ms=latency,
                max_model_size_bytes=size,
                **flags,
            ),
        )

    def limits(
        self, raw: object, path: str, directions: MetricDirections, *, fairness: bool = False
    ) -> tuple[Limit, ...]:
        if raw is None:
            return ()
        limits = []
        for name, spec in self.table(raw, path).items():
            where = f"{path}.{toml_key(name)}"
            self.wrap(where, split_name, name)
            problem = directions.problem("fairness" if fairness else "thresholds", name)
            if problem is not None:
                self.error(where, problem)
            direction = directions.of(name)
            if isinstance(spec, dict):
                self.check_keys(spec, LIMIT_KEYS, where)
                for key, value in spec.items():
                    if not _is_number(value):
                        self.fail(f"{where}.{key}", "a number", value)
                low, high = spec.get("min"), spec.get("max")
            elif _is_number(spec) and direction is not Direction.NONE:
                low, high = (spec, None) if direction is Direction.HIGHER else (None, spec)
            elif _is_number(spec):
                self.error(
                    where,
                    f"{name} has no better direction ({direction.phrase}), so a single number "
                    f"cannot say which side it bounds; write {{ min = {spec!r} }} or "
                    f"{{ max = {spec!r} }} (or both)",
                )
            else:
                side = "minimum" if direction is Direction.HIGHER else "maximum"
                self.fail(
                    where,
                    f"a number (the {side}: {direction.phrase} for {name}) or a table such "
                    "as { min = 0.8, max = 0.99 }",
                    spec,
                )
            limits.append(self.wrap(where, Limit, name, low, high))
        return tuple(limits)

    def relatives(
        self, raw: object, path: str, *, per_slice: bool = False
    ) -> tuple[RelativeRule, ...]:
        if raw is None:
            return ()
        allowed = SLICE_MARGIN_KEYS if per_slice else MARGIN_KEYS
        rules = []
        for name, spec in self.table(raw, path).items():
            where = f"{path}.{toml_key(name)}"
            scope, _, metric = self.wrap(where, split_name, name)
            if per_slice and scope is not None:
                self.error(
                    where,
                    f"{name!r} names one {scope} metric; name the metric alone (e.g. "
                    f"{metric!r}): the rule applies to every slice. Bound one slice under "
                    "thresholds or champion",
                )
            if not isinstance(spec, dict):
                self.fail(where, f"a table with one margin, e.g. {{ {allowed[1]} = 5 }}", spec)
            for key in spec:
                if per_slice and key in MARGIN_KEYS and key not in allowed:
                    self.error(
                        where,
                        f"{key} is not allowed in slices, which bound how much any slice may "
                        "regress; use max_worse or max_worse_pct",
                    )
            self.check_keys(spec, allowed, where)
            if len(spec) != 1:
                self.error(where, _one_margin(list(spec), allowed))
            ((margin, amount),) = spec.items()
            if not _is_number(amount):
                unit = "percent of the champion's value" if margin.endswith("_pct") else "units"
                self.fail(f"{where}.{margin}", f"a number >= 0 ({unit})", amount)
            rules.append(self.wrap(where, RelativeRule, name, Margin(margin), amount))
        return tuple(rules)


def _one_margin(keys: list[str], allowed: Sequence[str]) -> str:
    if not keys:
        return f"set one margin: {', '.join(allowed)}"
    worse = [k for k in keys if k.startswith("max_worse")]
    better = [k for k in keys if k.startswith("min_better")]
    why = (
        f"{worse[0]} and {better[0]} contradict each other (a candidate that must be better "
        "is never worse); keep the one you mean"
        if worse and better
        else "an amount and a percentage of the same kind cannot both apply; keep one"
    )
    return f"sets {', '.join(keys)}, but a rule takes exactly one margin: {why}"


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


# --- writing -------------------------------------------------------------------------------

_HEADER = f"""\
# loopml gate policy: what a model version must pass to move into staging or production.
# The format is described in {_DOCS}. Bounds are inclusive.
#
# [gates.directions]        which way custom metrics get better: name = "higher" | "lower"
#                           (or "none": best near a target, bounded by min and max only)
# [gates.default.STAGE]     the rules of every model for STAGE (staging or production)
# [gates.models.NAME.STAGE] a model's own rules for STAGE; they replace the default, whole
#   require_data_validation  data roles whose validation must have passed
#   max_latency_p99_ms       the predict latency budget (99th percentile, milliseconds)
#   max_model_size_bytes     the model size budget
#   require_approval         a person must approve the move; allow_self_approval lets the
#                            requester be that person
#   .thresholds   metric = {{ min = x, max = y }}            absolute bounds
#   .champion     metric = {{ max_worse = x }}               relative to the champion; or
#                 max_worse_pct, min_better, min_better_pct (percent of |champion|)
#   .slices       metric = {{ max_worse_pct = x }}           for every slice both measured
#   .fairness     measure = {{ max = x }}                    fairness bounds
"""


def policy_to_toml(policy: GatePolicy) -> str:
    """Write ``policy`` as commented TOML that :func:`policy_from_toml` reads back equal."""
    lines = [_HEADER, "[gates]", f"format_version = {policy.format_version}", ""]
    if policy.directions.declared:
        lines.append("[gates.directions]")
        lines += [
            f"{toml_key(n)} = {_string(d.value)}" for n, d in policy.directions.declared.items()
        ]
        lines.append("")
    for path, stage in policy.stage_policies():
        lines += _stage_lines(path, stage)
    for name, stages in policy.models.items():
        if not stages:  # a model listed without rules: keep it, so the file reads back equal
            lines += [f"[gates.models.{toml_key(name)}]", ""]
    return "\n".join(lines)


def _stage_lines(path: str, policy: StagePolicy) -> list[str]:
    lines = [f"[{path}]"]
    if policy.require_data_validation:
        roles = ", ".join(_string(r) for r in policy.require_data_validation)
        lines.append(f"require_data_validation = [{roles}]")
    if policy.max_latency_p99_ms is not None:
        lines.append(f"max_latency_p99_ms = {policy.max_latency_p99_ms!r}")
    if policy.max_model_size_bytes is not None:
        lines.append(f"max_model_size_bytes = {policy.max_model_size_bytes:_}")
    if policy.require_approval:
        lines.append("require_approval = true")
    if policy.allow_self_approval:
        lines.append("allow_self_approval = true")
    lines.append("")
    sections = (
        ("thresholds", [(r.name, _limit(r)) for r in policy.thresholds]),
        ("champion", [(r.metric, _relative(r)) for r in policy.champion]),
        ("slices", [(r.metric, _relative(r)) for r in policy.slices]),
        ("fairness", [(r.name, _limit(r)) for r in policy.fairness]),
    )
    for section, entries in sections:
        if entries:
            lines.append(f"[{path}.{section}]")
            lines += [f"{toml_key(name)} = {value}" for name, value in entries]
            lines.append("")
    return lines


def _limit(rule: Limit) -> str:
    sides = [("min", rule.minimum), ("max", rule.maximum)]
    return "{ " + ", ".join(f"{k} = {v!r}" for k, v in sides if v is not None) + " }"


def _relative(rule: RelativeRule) -> str:
    return f"{{ {rule.margin.value} = {rule.amount!r} }}"


def _string(text: str) -> str:
    return toml_key(text) if toml_key(text).startswith('"') else f'"{text}"'
