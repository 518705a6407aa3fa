"""Killing a process mid-traffic loses no prediction-log record that the contract promises.

The durability contract (docs/serving.md#prediction-log): a record is durable once a
``flush()`` that started after its ``submit`` returned True. A victim process submits
records with increasing ids, flushes every hundred and prints ``acked N`` (one write(2)
per line) when the flush succeeds, and keeps submitting; the test SIGKILLs it at a random
moment, often while a segment is being written. Afterwards every acked record is readable
exactly once, every segment file opens and reads whole, and nothing but the odd
``.tmp-*`` file (never read) is left by the kill. Three victims share one log, so damage
would accumulate. ``LOOPML_CRASH_SEED`` replays a failing run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loopml.adapters.prediction_reader import ParquetPredictionReader
from loopml.adapters.prediction_segments import TEMP_PREFIX

pytestmark = pytest.mark.slow

VICTIMS = 3
VICTIM = r"""
import os, sys, time
from pathlib import Path
from loopml.adapters.prediction_log import ParquetPredictionSink
from loopml.domain.predictions import PredictionRecord, Route

root, prefix = Path(sys.argv[1]), sys.argv[2]
sink = ParquetPredictionSink(root, queue_size=500, segment_records=40, segment_seconds=0.01)
features = {f"f{j}": [float(j)] for j in range(12)}
i = 0
while True:
    for _ in range(100):
        record = PredictionRecord(
            f"{prefix}-{i}", int(time.time() * 1000), "crashy", "m", 1, Route.PRODUCTION,
            features, {"y": [i]}, 0.1,
        )
        while not sink.submit(record):  # never drop: every id below an ack must be there
            time.sleep(0.0005)
        i += 1
    if sink.flush(30):
        os.write(1, f"acked {i}\n".encode())
"""


def run_victim(root: Path, prefix: str, rng: random.Random) -> int:
    """Start a victim, kill it after a few acks and a random pause; return the last ack."""
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(root), prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked = 0
    try:
        wanted = rng.randint(2, 6)
        for _ in range(wanted):
            line = proc.stdout.readline().decode()
            if not line:
                raise AssertionError(f"victim died early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            acked = int(line.split()[1])
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Acks printed between our last read and the kill count too.
    for line in rest.decode().splitlines():
        if line.startswith("acked "):
            acked = int(line.split()[1])
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_sigkill_loses_no_acknowledged_record(tmp_path: Path) -> None:
    seed = int(os.environ.get("LOOPML_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    root = tmp_path / "predictions"
    acked = {f"v{v}": run_victim(root, f"v{v}", rng) for v in range(VICTIMS)}

    folder = root / "crashy"
    segments = [p for p in folder.iterdir() if not p.name.startswith(".")]
    for path in segments:  # every segment is whole: its footer and all its rows read
        pq.read_table(path)
    leftovers = [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert len(leftovers) <= VICTIMS, f"seed {seed}: {leftovers}"

    reader = ParquetPredictionReader(root)
    ids = reader.read("crashy")["request_id"].to_pylist()
    seen = set(ids)
    assert len(seen) == len(ids), f"seed {seed}: a record was written twice"
    for prefix, count in acked.items():
        assert count >= 200, f"seed {seed}"
        missing = [i for i in range(count) if f"{prefix}-{i}" not in seen]
        assert not missing, f"seed {seed}: {prefix} acked {count} but lost {missing[:10]}"
