"""Evaluation benchmark: ``evaluate_classification`` on 1,000,000 rows with slices.

Run ``python benchmarks/evaluation.py`` (``--rows N`` to change the size, ``--repeats R``
for more runs). The data is seeded: a 0/1 label, a probability per row (about a million
distinct scores, so the ranking metrics see few ties), a 0.5-threshold prediction, and
three slice columns: ``region`` (5 text values), ``age_band`` (8 integers) and ``device``
(3 text values), 16 slices in all; ``device`` is also the sensitive column.

Timed in this process with ``time.process_time`` (CPU, all threads) and
``time.perf_counter`` (wall): the median of ``--repeats`` runs after one warm-up. For
scale, the same metrics overall and per slice (accuracy, precision, recall, F1, macro F1,
ROC AUC, average precision, log loss, Brier score, confusion matrix, calibration curve)
are computed once with scikit-learn calls on each slice's rows. The last stdout line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from loopml.stats.evaluation import evaluate_classification

SLICES = ["region", "age_band", "device"]


def make_data(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Table]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, rows)
    score = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0.0, 1.0)
    pred = (score > 0.5).astype(np.int64)
    data = pa.table(
        {
            "region": rng.choice(["north", "south", "east", "west", "centre"], rows),
            "age_band": rng.integers(0, 8, rows),
            "device": rng.choice(["ios", "android", "web"], rows),
        }
    )
    return y, pred, score, data


def timed(run: Callable[[], Any], repeats: int) -> dict[str, float]:
    run()  # warm-up: imports, allocator
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall)}


def sklearn_everything(y: np.ndarray, pred: np.ndarray, score: np.ndarray, data: pa.Table) -> None:
    groups = [np.ones(y.size, dtype=bool)]
    for column in SLICES:
        values = data[column].to_numpy()
        groups += [values == v for v in np.unique(values)]
    for rows in groups:
        t, p, s = y[rows], pred[rows], score[rows]
        skm.accuracy_score(t, p)
        skm.precision_score(t, p, zero_division=0.0)
        skm.recall_score(t, p, zero_division=0.0)
        skm.f1_score(t, p, zero_division=0.0)
        skm.f1_score(t, p, average="macro", zero_division=0.0)
        skm.roc_auc_score(t, s)
        skm.average_precision_score(t, s)
        skm.log_loss(t, s)
        skm.brier_score_loss(t, s)
        skm.confusion_matrix(t, p)
        calibration_curve(t, s, n_bins=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    y, pred, score, data = make_data(args.rows)

    def loopml() -> Any:
        return evaluate_classification(y, pred, score, data=data, slices=SLICES, sensitive="device")

    evaluation = loopml()
    ours = timed(loopml, args.repeats)
    theirs = timed(lambda: sklearn_everything(y, pred, score, data), 1)
    print(
        f"rows {args.rows:,}, slices {len(evaluation.slices)}, metrics per slice "
        f"{len(evaluation.metrics)}"
    )
    print(f"{'':24}{'CPU s':>8}{'wall s':>8}")
    print(f"{'loopml evaluate':24}{ours['cpu_s']:8.3f}{ours['wall_s']:8.3f}")
    print(f"{'scikit-learn per slice':24}{theirs['cpu_s']:8.3f}{theirs['wall_s']:8.3f}")
    result = {
        "rows": args.rows,
        "slices": len(evaluation.slices),
        "loopml": ours,
        "sklearn_per_slice": theirs,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
