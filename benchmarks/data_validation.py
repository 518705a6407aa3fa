"""Data validation benchmark: loopml's data linter on synthetic data.

Run ``python benchmarks/data_validation.py`` (1,000,000 rows) or ``--rows N``. The data
has 20 columns: an int64 id (the unique key), 7 more int64 and 7 float64 columns (two of
them with about 1% missing values) and 5 text columns of 6 to 12 categories each. The
schema holds about 20 checks: a range on the 14 numeric columns, nullability on all 20,
allowed categories on the 5 text columns, the unique key, and the type of every column.

Validation runs on the data as one Table and as 65,536-row record batches (a file read
batch by batch). Each case is timed ``--repeat`` times after one warm-up call; the median
CPU time (all threads, ``time.process_time``) and wall time are printed, then one JSON
line. Clean data is used, so the figure is the cost of checking, not of reporting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from loopml.stats.schema import infer_schema
from loopml.stats.validate import validate

BATCH_ROWS = 65_536


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {"id": pa.array(rng.permutation(rows).astype(np.int64))}
    for i in range(7):
        columns[f"count_{i}"] = pa.array(rng.integers(0, 1000 * (i + 1), rows))
    for i in range(7):
        values = rng.normal(i, 1 + i, rows)
        mask = rng.random(rows) < 0.01 if i < 2 else None
        columns[f"measure_{i}"] = pa.array(values, mask=mask)
    for i in range(5):
        choices = np.array([f"level_{i}_{j}" for j in range(6 + i)], dtype=object)
        columns[f"category_{i}"] = pa.array(rng.choice(choices, rows), pa.string())
    return pa.table(columns)


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    call()  # warm-up: first calls load Arrow kernels and numpy's sort dispatch
    cpu, wall = [], []
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        call()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    table = make_table(args.rows)
    schema = infer_schema(table, key=["id"])
    checks = sum(
        (rule.minimum is not None or rule.maximum is not None) + (rule.categories is not None)
        for rule in schema.columns
    )
    batches = table.to_batches(max_chunksize=BATCH_ROWS)
    report = validate(table, schema)
    assert report.ok, report.to_dict()  # a benchmark of failing data is no benchmark
    results = {}
    for name, data in (("table", table), ("batches", batches)):
        cpu, wall = timed(lambda data=data: validate(data, schema), args.repeat)
        results[name] = {"cpu_s": round(cpu, 4), "wall_s": round(wall, 4)}
        shape = f"{args.rows:,} rows x {table.num_columns} columns"
        print(f"{name:8} {shape}: cpu {cpu:.3f} s, wall {wall:.3f} s")
    summary = {
        "rows": args.rows,
        "columns": table.num_columns,
        "range_and_category_checks": checks,
        "nullability_and_type_checks": 2 * len(schema.columns),
        "key_check": 1,
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
