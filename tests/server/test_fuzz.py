"""A fuzzing pass over the predict endpoints: whatever JSON arrives, never a 500."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from server_support import Live

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
rows = st.lists(
    st.dictionaries(st.sampled_from(["temp", "hour", "wind", ""]), values, max_size=4), max_size=4
)
bodies = st.one_of(
    values,
    st.fixed_dictionaries({"rows": rows}),
    st.fixed_dictionaries({"columns": st.dictionaries(st.sampled_from(["temp", "hour"]), values)}),
    st.fixed_dictionaries(
        {
            "inputs": st.lists(
                st.dictionaries(st.sampled_from(["name", "shape", "datatype", "data"]), values),
                max_size=3,
            )
        }
    ),
)


def test_no_body_makes_a_500(live: Live) -> None:
    statuses: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=bodies, path=st.sampled_from(["/deployments/demand/predict", "/v2/models/hot/infer"])
    )
    def post(body: Any, path: str) -> None:
        status, answer, _ = live.request("POST", path, raw=json.dumps(body).encode())
        statuses.append(status)
        assert status < 500, (body, answer)
        if status >= 400:
            assert answer["error"] and answer["request_id"]

    post()
    assert len(statuses) == 150 and any(s == 422 for s in statuses)


@pytest.mark.parametrize("datatype", [[], {}, None, 3, "FP65"])
def test_a_datatype_that_is_not_an_oip_type_name_is_a_400(live: Live, datatype: Any) -> None:
    """Found by the fuzzer: an unhashable datatype (a list) once made a 500."""
    body = {"inputs": [{"name": "temp", "shape": [1], "datatype": datatype, "data": [0.3]}]}
    status, answer, _ = live.request("POST", "/v2/models/hot/infer", raw=json.dumps(body).encode())
    assert status == 400
    assert "datatype" in answer["error"] and "FP64" in answer["error"]
