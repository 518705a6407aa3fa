"""Non-finite floats in JSON: strict JSON has no NaN or infinity, so they are stored as
the strings ``"nan"``, ``"inf"`` and ``"-inf"``. One definition for every stored value
(profiles, evaluations, validation reports)."""

from __future__ import annotations

import math

from loopml.domain.errors import InvalidInput

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_number(value: object) -> object:
    """``value``, with a non-finite float replaced by its string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def decode_number(value: object, what: str, allowed: tuple[str, ...] = tuple(NON_FINITE)) -> object:
    """``value``, with the ``allowed`` strings turned back into floats (NaN is always the
    one :data:`math.nan` object, so decoded values compare equal); any other string is
    refused, naming ``what`` it was read as."""
    if value.__class__ is str:
        if value in allowed:
            return NON_FINITE[value]
        names = [repr(a) for a in allowed]
        listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
        raise InvalidInput(f"{what} is the string {value!r}; only {listed} are allowed")
    return value
