"""Pipelines as graphs: wiring by name, run order, neighbours, and every refusal.

Steps are real decorated functions; each refusal is checked for what the person has to
read to fix it: the pipeline, the step, the offending name and the way out.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from loopml.domain.errors import InvalidInput
from loopml.domain.pipelines import Pipeline, Step, step


@step(outputs="raw")
def load(bikes: Any) -> Any:
    return bikes


@step
def clean(raw: Any, threshold: float = 0.5) -> Any:
    return [r for r in raw if r > threshold]


@step(outputs=["train_set", "test_set"])
def split(clean: Any, test_share: float = 0.25, seed: int = 7) -> Any:
    cut = int(len(clean) * (1 - test_share))
    return clean[:cut], clean[cut:]


@step(outputs="model")
def fit(train_set: Any, alpha: float) -> Any:
    return {"alpha": alpha, "n": len(train_set)}


@step
def evaluate(model: Any, test_set: Any) -> Any:
    return {"n": len(test_set), "alpha": model["alpha"]}


STEPS = [evaluate, fit, split, clean, load]  # declared in no useful order on purpose


def demo(**params: Any) -> Pipeline:
    return Pipeline(
        "demo", STEPS, datasets={"bikes": "bikes@3"}, params=params or {"fit": {"alpha": 0.1}}
    )


# --- steps --------------------------------------------------------------------------


def test_a_step_keeps_its_function_usable() -> None:
    assert isinstance(clean, Step)
    assert clean([0.1, 0.7, 0.9]) == [0.7, 0.9]
    assert clean([0.1, 0.7], threshold=0.0) == [0.1, 0.7]


def test_outputs_default_to_the_step_name_and_a_string_is_one_output() -> None:
    assert clean.outputs == ("clean",)
    assert load.outputs == ("raw",)  # not ("r", "a", "w")
    assert split.outputs == ("train_set", "test_set")
    assert split.parameters == ("clean", "test_share", "seed")
    assert dict(split.defaults) == {"test_share": 0.25, "seed": 7}

    @step(name="fit_v2", outputs=("weights", "bias"), libraries=["numpy"], cache=False)
    def fit_linear(x: Any) -> Any:
        return x, 0

    assert (fit_linear.name, fit_linear.outputs) == ("fit_v2", ("weights", "bias"))
    assert (fit_linear.libraries, fit_linear.cache, fit_linear.pickle) == (("numpy",), False, False)


def test_output_names_must_be_unique_and_valid() -> None:
    with pytest.raises(InvalidInput, match=r"output names must be unique.*\['a'\]"):

        @step(outputs=["a", "b", "a"])
        def twice(x: Any) -> Any:
            return x

    with pytest.raises(InvalidInput, match=r"output name 'not valid!' is not valid"):

        @step(outputs="not valid!")
        def bad(x: Any) -> Any:
            return x


@pytest.mark.parametrize("signature", ["*rows", "**options"])
def test_a_step_with_star_parameters_is_refused(signature: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def gather(x, {signature}):\n    return x\n", namespace)
    name = signature.lstrip("*")
    with pytest.raises(InvalidInput, match=rf"step 'gather' takes \*{name}; .* named one by one"):
        step(namespace["gather"])


def test_decorating_twice_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"step 'clean' is decorated with @step twice"):
        step(clean)
    with pytest.raises(InvalidInput, match=r"decorated with @step twice"):
        step(outputs="x")(clean)


def test_only_functions_can_be_steps() -> None:
    with pytest.raises(InvalidInput, match=r"@step decorates a function, got int 3"):
        step(3)  # type: ignore[call-overload]


# --- wiring -------------------------------------------------------------------------


def test_parameters_are_wired_by_name_to_outputs_datasets_and_params() -> None:
    p = demo()
    load_w, clean_w, split_w = p.step("load"), p.step("clean"), p.step("split")
    fit_w, eval_w = p.step("fit"), p.step("evaluate")
    assert (dict(load_w.datasets), dict(load_w.inputs), dict(load_w.params)) == (
        {"bikes": "bikes@3"},
        {},
        {},
    )
    assert dict(clean_w.inputs) == {"raw": "load"}
    assert dict(clean_w.params) == {"threshold": 0.5}  # the function's default
    assert dict(split_w.inputs) == {"clean": "clean"}
    assert dict(split_w.params) == {"test_share": 0.25, "seed": 7}
    assert (dict(fit_w.inputs), dict(fit_w.params)) == ({"train_set": "split"}, {"alpha": 0.1})
    assert dict(eval_w.inputs) == {"model": "fit", "test_set": "split"}
    assert eval_w.upstream == ("fit", "split")


def test_pipeline_params_override_defaults_in_both_forms() -> None:
    nested = demo(fit={"alpha": 0.3}, split={"seed": 1})
    dotted = demo(**{"fit.alpha": 0.3, "split.seed": 1})
    for p in (nested, dotted):
        assert dict(p.step("fit").params) == {"alpha": 0.3}
        assert dict(p.step("split").params) == {"test_share": 0.25, "seed": 1}


def test_with_params_lays_new_values_over_the_old_ones() -> None:
    base = demo(fit={"alpha": 0.1}, split={"seed": 1})
    tuned = base.with_params({"fit.alpha": 0.9, "clean": {"threshold": 0.0}})
    assert dict(tuned.step("fit").params) == {"alpha": 0.9}
    assert dict(tuned.step("split").params)["seed"] == 1  # kept
    assert dict(tuned.step("clean").params) == {"threshold": 0.0}
    assert dict(base.step("fit").params) == {"alpha": 0.1}  # the original is unchanged


def test_param_values_are_stored_as_json() -> None:
    p = Pipeline("p", [fit], params={"fit": {"alpha": (1, 2), "train_set": [1]}})
    assert dict(p.step("fit").params) == {"alpha": [1, 2], "train_set": [1]}


# --- order and neighbours -----------------------------------------------------------


def test_the_run_order_is_topological() -> None:
    assert demo().order == ("load", "clean", "split", "fit", "evaluate")


def test_ties_go_to_the_first_declared_ready_step() -> None:
    @step
    def a(bikes: Any) -> Any:
        return bikes

    @step
    def b(bikes: Any) -> Any:
        return bikes

    @step
    def c(a: Any) -> Any:
        return a

    ds = {"bikes": "bikes"}
    assert Pipeline("p", [a, b], datasets=ds).order == ("a", "b")
    assert Pipeline("p", [b, a], datasets=ds).order == ("b", "a")
    # each time, the first declared step whose inputs are ready: c runs as soon as it can
    assert Pipeline("p", [c, b, a], datasets=ds).order == ("b", "a", "c")
    assert Pipeline("p", [c, a, b], datasets=ds).order == ("a", "c", "b")


def test_upstream_in_run_order_and_downstream_as_a_set() -> None:
    p = demo()
    assert p.upstream_of("evaluate") == ["load", "clean", "split", "fit"]
    assert p.upstream_of("split") == ["load", "clean"]
    assert p.upstream_of("load") == []
    assert p.downstream_of("clean") == {"split", "fit", "evaluate"}
    assert p.downstream_of("fit") == {"evaluate"}
    assert p.downstream_of("evaluate") == set()


def test_an_unknown_step_is_refused_listing_the_steps() -> None:
    with pytest.raises(
        InvalidInput,
        match=r"pipeline 'demo' has no step 'train'; its steps are: load, clean, split, fit",
    ):
        demo().upstream_of("train")


# --- refusals -----------------------------------------------------------------------


def test_a_cycle_is_refused_showing_the_cycle() -> None:
    @step
    def a(b: Any) -> Any:
        return b

    @step
    def b(a: Any) -> Any:
        return a

    with pytest.raises(InvalidInput, match=r"pipeline 'loop' has a cycle: a -> b -> a; "):
        Pipeline("loop", [a, b])


def test_a_longer_cycle_is_shown_producer_first_without_the_steps_around_it() -> None:
    @step
    def start(bikes: Any) -> Any:
        return bikes

    @step
    def a(c: Any, start: Any) -> Any:
        return c

    @step
    def b(a: Any) -> Any:
        return a

    @step
    def c(b: Any) -> Any:
        return b

    @step
    def aardvark(a: Any) -> Any:  # downstream of the cycle, sorts before every member
        return a

    with pytest.raises(InvalidInput) as info:
        Pipeline("loop", [aardvark, start, a, b, c], datasets={"bikes": "bikes"})
    assert "has a cycle: a -> b -> c -> a;" in str(info.value)


def test_a_step_needing_its_own_output_is_a_cycle() -> None:
    @step
    def grow(grow: Any) -> Any:
        return grow

    with pytest.raises(InvalidInput, match=r"has a cycle: grow -> grow"):
        Pipeline("p", [grow])


def test_a_parameter_nothing_provides_is_refused_with_what_could() -> None:
    with pytest.raises(InvalidInput) as info:
        Pipeline("demo", STEPS, datasets={"bikes": "bikes@3"})  # no alpha for fit
    message = str(info.value)
    assert "pipeline 'demo': step 'fit' needs input 'alpha'" in message
    assert "outputs: clean, evaluate, model, raw, test_set, train_set" in message
    assert "datasets: bikes" in message
    assert "give the param a value" in message


def test_a_missing_dataset_lists_no_datasets() -> None:
    with pytest.raises(InvalidInput, match=r"step 'load' needs input 'bikes'.*datasets: none"):
        Pipeline("p", [load])


def test_two_steps_producing_one_output_are_refused() -> None:
    @step(name="fit_b", outputs="model")
    def fit_other(train_set: Any) -> Any:
        return train_set

    with pytest.raises(
        InvalidInput,
        match=r"output 'model' is produced by both step 'fit' and step 'fit_b'; rename one",
    ):
        Pipeline("p", [fit, fit_other], params={"fit.alpha": 1})


def test_two_steps_with_one_name_are_refused() -> None:
    @step(name="fit", outputs="other_model")
    def fit_again(train_set: Any) -> Any:
        return train_set

    with pytest.raises(InvalidInput, match=r"pipeline 'p' has two steps named 'fit'"):
        Pipeline("p", [fit, fit_again], params={"fit.alpha": 1})


def test_an_output_named_like_a_dataset_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"output 'raw' of step 'load' has the name of a data"):
        Pipeline("p", [load], datasets={"bikes": "bikes", "raw": "raw@1"})


def test_params_for_an_unknown_step_or_parameter_are_refused() -> None:
    with pytest.raises(
        InvalidInput, match=r"params name step 'train', which is not in the pipeline; its steps"
    ):
        demo(train={"alpha": 0.1})
    with pytest.raises(
        InvalidInput,
        match=r"step 'fit' has no parameter 'gamma'; its parameters are: train_set, alpha",
    ):
        demo(fit={"alpha": 0.1, "gamma": 2})
    with pytest.raises(InvalidInput, match=r"param 'fit' must be 'step.param' = value"):
        demo(fit=0.1)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (pd.DataFrame({"a": [1]}), "is DataFrame"),
        (math.nan, "is float nan"),
        (math.inf, "is float inf"),
        ({1, 2}, "is set"),
        (object(), "is object"),
    ],
)
def test_a_param_that_is_not_json_is_refused(value: Any, shown: str) -> None:
    with pytest.raises(InvalidInput) as info:
        demo(fit={"alpha": value})
    message = str(info.value)
    assert f"param 'alpha' of step 'fit' {shown}" in message
    assert "params must be JSON values" in message and "as an input" in message


def test_a_default_that_is_not_json_is_refused_naming_the_step() -> None:
    @step
    def scale(raw: Any, factor: Any = math.nan) -> Any:
        return raw

    with pytest.raises(InvalidInput, match=r"default of param 'factor' of 'scale' is float nan"):
        Pipeline("p", [load, scale], datasets={"bikes": "bikes"})


def test_a_non_step_in_the_list_is_refused() -> None:
    def plain(raw: Any) -> Any:
        return raw

    with pytest.raises(
        InvalidInput, match=r"pipeline 'p': <function .*plain.*> is not a step; decorate"
    ):
        Pipeline("p", [load, plain])  # type: ignore[list-item]


def test_a_bad_pipeline_name_or_dataset_reference_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"pipeline name 'my pipeline' is not valid"):
        Pipeline("my pipeline", [load], datasets={"bikes": "bikes"})
    with pytest.raises(InvalidInput, match=r"dataset reference 'bikes@x' has version 'x'"):
        Pipeline("p", [load], datasets={"bikes": "bikes@x"})
