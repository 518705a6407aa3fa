"""The bike-demand pipeline: validate -> train -> evaluate -> gate -> register.

``loopml quickstart`` copies this file into its workspace as ``pipeline.py``; run it with
``loopml run`` there. Run it again and every step is a cache hit; change a param
(``loopml run -p train.alpha=3``) and only ``train`` and the steps after it run again,
each saying why. The gate policy is the ``[gates]`` table of ``loopml.toml``.

It trains on every row of the newest version of ``bike-train`` (Jan-Apr 2011 at first);
the retrain loop adds a version with the production rows whose labels arrived, and runs
this same pipeline on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import loopml
from loopml.client import Client

MODEL = "bike-demand"
DATASET = "bike-train"  # the rows the model learns from
HELD_OUT = "bike-sharing-eval"  # May-Jun 2011: months the first model never saw
SCHEMA = "schemas/bike-model.toml"  # written by `loopml quickstart`
TARGET = "cnt"
CATEGORICAL = ["season", "mnth", "hr", "weekday", "weathersit"]
NUMERIC = ["holiday", "workingday", "temp", "atemp", "hum", "windspeed"]


def client() -> Client:
    """The client of the run this step is running in."""
    run = loopml.active_run()
    if run is None:
        raise RuntimeError("run this pipeline with `loopml run` or loopml.run_pipeline")
    return run.client


@loopml.step(outputs="validation")
def validate(bikes: Any, schema: str = SCHEMA) -> dict[str, int]:
    """Lint the data against its schema; an error stops the pipeline here."""
    report = client().validate_data(bikes, Path(__file__).parent / schema, "training")
    if not report.ok:
        raise ValueError(f"{len(report.errors)} validation errors: {report.errors[0].message}")
    return {"rows": len(bikes), "warnings": len(report.warnings)}


@loopml.step(outputs="model", libraries=["scikit-learn"])
def train(bikes: Any, validation: dict[str, int], alpha: float = 1.0) -> Any:
    """A ridge regression on one-hot calendar features and scaled weather."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numbers", StandardScaler(), NUMERIC),
        ]
    )
    model = Pipeline([("features", features), ("ridge", Ridge(alpha=alpha))])
    loopml.log_params({"model": "ridge", "train_rows": len(bikes)})
    return model.fit(bikes[CATEGORICAL + NUMERIC], bikes[TARGET])


@loopml.step(outputs="evaluation", libraries=["scikit-learn"])
def evaluate(held_out: Any, model: Any) -> dict[str, Any]:
    """Regression metrics on held-out months, overall and per season."""
    from loopml.stats.evaluation import evaluate_regression

    predicted = model.predict(held_out[CATEGORICAL + NUMERIC])
    evaluation = evaluate_regression(
        held_out[TARGET], predicted, data=held_out, slices=["season"], label_name=TARGET
    )
    loopml.log_metrics(evaluation.metrics)
    return evaluation.to_dict()


@loopml.step(outputs="gate")
def gate(evaluation: dict[str, Any], validation: dict[str, int]) -> dict[str, object]:
    """The staging gates of loopml.toml, judged before anything is registered."""
    from loopml.domain.evaluation import Evaluation

    metrics = Evaluation.from_dict(evaluation).flat_metrics()
    passed = {"training": True, "evaluation": True}  # `validate` raised otherwise
    report = client().check_gates(MODEL, "staging", metrics, data_validation=passed)
    loopml.log_artifact(report.to_markdown().encode(), "gates.md")
    if not report.passed:
        raise ValueError(report.failure_text())
    return {"stage": "staging", "passed": True}  # the verdict; the report is an artifact


@loopml.step(outputs="registered")
def register(bikes: Any, model: Any, evaluation: dict[str, Any], gate: dict[str, object]) -> str:
    """Register the model with its evaluation and move it to staging (the registry runs
    the same gates again: nothing reaches staging without passing them)."""
    from loopml.domain.evaluation import Evaluation

    sample = bikes[CATEGORICAL + NUMERIC].head(200)
    result = Evaluation.from_dict(evaluation)
    mv = loopml.register_model(model, MODEL, sample=sample, metrics=result.metrics)
    c = client()
    c.record_evaluation(
        mv.uri,
        result,
        dataset=HELD_OUT,
        data_validation={"training": True, "evaluation": True},
    )
    c.promote(MODEL, mv.version, "staging", reason="pipeline gates passed")
    return mv.uri


pipeline = loopml.Pipeline(
    "bike-demand",
    [validate, train, evaluate, gate, register],
    datasets={"bikes": DATASET, "held_out": HELD_OUT},
)
