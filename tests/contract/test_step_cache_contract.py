"""The StepCache contract, run against memory, SQLite and PostgreSQL.

A record reads back whole (its key recomputes to the digest it is stored under), lookups
are exact on pipeline, step and key, the latest record of a step is the newest by time
whatever order records were written in, a record with the same key replaces the old one,
and ``step_blobs`` names every output a record still references (what gc must keep).
"""

from __future__ import annotations

import blake3

from loopml.domain.artifacts import Digest
from loopml.domain.step_cache import InputPrint, StepKey, StepRecord, StoredOutput
from loopml.ports import StepCache


def blob(content: str) -> Digest:
    return Digest("blake3", blake3.blake3(content.encode()).hexdigest())


def key(alpha: float = 0.1, **extra: object) -> StepKey:
    return StepKey(
        code={"shop/steps.py:train": "0f" * 16, "shop/features.py:build": "1e" * 16},
        params={"alpha": alpha, **extra},
        inputs={"bikes": InputPrint("bikes@3", str(blob("bikes-3")))},
        libraries={"scikit-learn": "1.5.2"},
    )


def record(
    k: StepKey,
    *,
    step: str = "train",
    pipeline: str = "demo",
    run: str = "r1",
    created: int = 1_000,
    outputs: dict[str, StoredOutput] | None = None,
) -> StepRecord:
    if outputs is None:
        outputs = {"model": StoredOutput("model:sklearn", blob(f"model-{run}"), 1234)}
    return StepRecord(pipeline, step, k, outputs, run, created, 250)


def test_a_record_reads_back_whole_under_its_key(steps: StepCache) -> None:
    outputs = {
        "train_set": StoredOutput("pandas", blob("train"), 10_000),
        "test_set": StoredOutput("pandas", blob("test"), 2_500),
        "meta": StoredOutput("json", blob("meta"), 12),
    }
    r = record(key(), step="split", outputs=outputs)
    steps.put_step(r)
    found = steps.find_step("demo", "split", r.key_digest)
    assert found == r
    assert found is not None and found.key.digest() == found.key_digest


def test_an_awkward_key_survives_storage_and_keeps_its_digest(steps: StepCache) -> None:
    k = key(
        alpha=0.1 + 0.2,  # 0.30000000000000004: the digest sees every bit
        layers=[64, 32.0, None, True],
        note='grüße, 日本 "quoted" \\ back',
        nested={"b": {"z": 1e-300, "a": -0.0}, "a": 2**60},
    )
    r = record(k)
    steps.put_step(r)
    found = steps.find_step("demo", "train", r.key_digest)
    assert found is not None
    assert found.key == k
    assert found.key.digest() == k.digest() == r.key_digest


def test_lookups_are_exact_on_pipeline_step_and_key(steps: StepCache) -> None:
    r = record(key())
    steps.put_step(r)
    assert steps.find_step("demo", "train", key(0.2).digest()) is None
    assert steps.find_step("demo", "evaluate", r.key_digest) is None
    assert steps.find_step("other", "train", r.key_digest) is None
    assert steps.latest_step("demo", "evaluate") is None
    assert steps.latest_step("other", "train") is None
    assert steps.find_by_run("r2") is None


def test_the_same_key_in_another_pipeline_or_step_is_its_own_entry(steps: StepCache) -> None:
    k = key()
    mine = record(k, run="r1")
    theirs = record(k, pipeline="other", run="r2")
    sibling = record(k, step="train_b", run="r3")
    for r in (mine, theirs, sibling):
        steps.put_step(r)
    assert steps.find_step("demo", "train", k.digest()) == mine
    assert steps.find_step("other", "train", k.digest()) == theirs
    assert steps.find_step("demo", "train_b", k.digest()) == sibling


def test_latest_is_the_newest_by_time_whatever_the_write_order(steps: StepCache) -> None:
    middle = record(key(0.2), run="r2", created=2_000)
    newest = record(key(0.3), run="r3", created=3_000)
    oldest = record(key(0.1), run="r1", created=1_000)
    for r in (middle, newest, oldest):
        steps.put_step(r)
    other_step = record(key(0.9), step="evaluate", run="r4", created=9_000)
    steps.put_step(other_step)
    assert steps.latest_step("demo", "train") == newest
    assert steps.latest_step("demo", "evaluate") == other_step
    # every key is still found on its own
    assert steps.find_step("demo", "train", oldest.key_digest) == oldest


def test_find_by_run_names_the_record_a_run_wrote(steps: StepCache) -> None:
    first = record(key(0.1), run="r1")
    second = record(key(0.2), step="evaluate", run="r2", created=2_000)
    steps.put_step(first)
    steps.put_step(second)
    assert steps.find_by_run("r1") == first
    assert steps.find_by_run("r2") == second


def test_a_record_with_the_same_key_replaces_the_old_one(steps: StepCache) -> None:
    k = key()
    old = record(k, run="r1", created=1_000)
    new = record(k, run="r2", created=5_000)
    steps.put_step(old)
    steps.put_step(new)
    assert steps.find_step("demo", "train", k.digest()) == new
    assert steps.latest_step("demo", "train") == new
    assert steps.find_by_run("r1") is None  # the old row is gone, not shadowed
    assert steps.find_by_run("r2") == new
    assert steps.step_blobs() == {str(blob("model-r2"))}


def test_step_blobs_are_every_output_of_every_record(steps: StepCache) -> None:
    assert steps.step_blobs() == set()
    steps.put_step(record(key(0.1), run="r1"))
    steps.put_step(
        record(
            key(),
            step="split",
            run="r2",
            outputs={
                "train_set": StoredOutput("pandas", blob("train"), 1),
                "test_set": StoredOutput("pandas", blob("test"), 1),
            },
        )
    )
    # a newer key of the same step does not hide the older record's outputs
    steps.put_step(record(key(0.2), run="r3", created=2_000))
    assert steps.step_blobs() == {
        str(blob("model-r1")),
        str(blob("train")),
        str(blob("test")),
        str(blob("model-r3")),
    }


def test_a_step_with_no_outputs_recorded_reads_back(steps: StepCache) -> None:
    r = record(key(), outputs={})
    steps.put_step(r)
    assert steps.find_step("demo", "train", r.key_digest) == r
    assert steps.step_blobs() == set()
