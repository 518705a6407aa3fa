"""Batch scoring: a registered model over a file, a folder or a stored dataset version.

``score`` resolves the model version once and loads it hash-verified, then streams the
input in chunks of ``chunk_rows`` rows through a pipeline of threads, so that reading, the
model, writing and recording overlap (Arrow's CSV parser, Parquet reader and encoders
release the GIL)::

    reader thread           read and re-cut batches, check the signature's columns
      -> predictor thread     the model on each chunk (its columns, in its order)
        -> writer thread        append the chunk to the output file
          -> calling thread       hand the same rows to the dataset version being
                                  recorded (its chunks and profile)

Queues between them hold two chunks each, so memory is bounded by a few chunks whatever
the input's size. The output (input columns + ``prediction``, and ``confidence``, the top
class's probability, for classifiers) is written to a temporary file beside ``output``
and renamed into place only when every row is scored: a failure leaves no half file, and
since the dataset version is written after the rename, no version either.

The output is recorded as a version of a dataset (``<model>-predictions`` by default) in
the same pass, not by reading the file again. Lineage is kept by a run in experiment
``batch-scoring``: its tags name the model version (:data:`TAG_MODEL_VERSION`), the input
and the output dataset version (:data:`TAG_OUTPUT_DATASET`); a stored input is a run
input (``DatasetRef``); the version's message names the model version and the run.
:meth:`BatchScoringService.producer` finds the run behind an output version.

``engine="dask"`` runs the same model call on a Dask cluster
(:mod:`loopml.services.dask_scoring`); the output, written and recorded here, is
identical.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any, Literal, TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from threadpoolctl import ThreadpoolController

from loopml.domain.datasets import DatasetVersion
from loopml.domain.errors import InvalidInput, NotFound
from loopml.domain.names import validate_identifier
from loopml.domain.registry import ModelVersion
from loopml.domain.tracking import DatasetRef, Metric, Run, RunStatus
from loopml.ports import TableFile
from loopml.services.dask_scoring import DaskInput, dask_tables
from loopml.services.datasets import AddResult, DatasetService
from loopml.services.registry import RegistryService
from loopml.services.scoring import Scorer
from loopml.services.tracking import TrackingService
from loopml.stats.batches import cores, map_widening, rechunk

DEFAULT_CHUNK_ROWS = 65_536
EXPERIMENT = "batch-scoring"
ENGINES = ("local", "dask")
TAG_MODEL_VERSION = "loopml.model_version"  # models:/NAME/VERSION that scored
TAG_MODEL_URI = "loopml.model_uri"  # the URI as given (an alias or stage moves on)
TAG_INPUT = "loopml.input"  # the path or NAME@VERSION scored
TAG_OUTPUT = "loopml.output"  # the file written
TAG_OUTPUT_DATASET = "loopml.output_dataset"  # NAME@VERSION recorded
TAG_ENGINE = "loopml.engine"
_DEPTH = 2  # chunks waiting between two threads

Progress = Callable[[int], None]  # called with the number of rows just written
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScoringResult:
    """What a scoring did: rows, time, the file written and the version recorded."""

    model_version: str  # models:/NAME/VERSION
    rows: int
    seconds: float
    output: Path
    dataset: DatasetVersion
    dataset_created: bool  # False: identical content was already that version
    run_id: str
    engine: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "model_version": self.model_version,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "output": str(self.output),
            "dataset": self.dataset.ref,
            "dataset_created": self.dataset_created,
            "run_id": self.run_id,
            "engine": self.engine,
        }


class BatchScoringService:
    def __init__(
        self, registry: RegistryService, tracking: TrackingService, datasets: DatasetService
    ) -> None:
        self.registry = registry
        self.tracking = tracking
        self.datasets = datasets

    def score(
        self,
        uri: str,
        input: str | Path,
        output: Path,
        *,
        actor: str,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        engine: Literal["local", "dask"] | str = "local",
        dataset_name: str | None = None,
        trusted: bool = False,
        workers: int | None = None,
        cluster: object | None = None,
        progress: Progress | None = None,
    ) -> ScoringResult:
        """Score ``input`` (a CSV or Parquet file, a folder of them, or ``NAME@VERSION``
        of a stored dataset) with the model ``uri`` names; write ``output`` (CSV if it
        ends with ``.csv``, else Parquet) and record it as a dataset version.

        ``engine="dask"`` scores on ``cluster`` (a ``distributed`` cluster or scheduler
        address), or on a new local cluster of ``workers`` processes."""
        if engine not in ENGINES:
            raise InvalidInput(f"engine {engine!r} is not known; expected one of {ENGINES}")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise InvalidInput(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        if workers is not None and workers < 1:
            raise InvalidInput(f"workers must be at least 1, got {workers!r}")
        output = Path(output).absolute()
        source = self._source(input)
        _check_output(output, source)
        mv = self.registry.resolve(uri)
        name = validate_identifier("dataset name", dataset_name or f"{mv.model}-predictions")
        loader = self.registry.loader
        model = loader.load(mv, trusted=trusted)  # mv is resolved: no second lookup
        scorer = Scorer.of(mv, model, loader.block_model(mv, model))
        if source.dataset is not None:
            scorer.check([c.name for c in source.dataset.columns], source.dataset.ref)
        run = self._start_run(mv, uri, source, output, engine, chunk_rows)
        message = f"predictions of {mv.uri} on {source.text} (batch-scoring run {run.id})"
        started = time.perf_counter()
        try:
            with ExitStack() as stack:
                if engine == "dask":
                    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                    tables = dask_tables(
                        self._dask_input(source, scorer, scratch),
                        scorer,
                        cluster=cluster,
                        workers=workers,
                    )
                else:
                    concurrent = loader.concurrent_predict(mv, model)
                    tables = _pipeline(_chunks(source, scorer, chunk_rows), scorer, concurrent)
                added, rows = self._write_and_record(name, output, tables, actor, message, progress)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            self.tracking.end_run(run.id, RunStatus.KILLED if interrupted else RunStatus.FAILED)
            raise
        seconds = time.perf_counter() - started
        self._finish_run(run, added, rows, seconds)
        return ScoringResult(
            mv.uri, rows, seconds, output, added.version, added.created, run.id, engine
        )

    def producer(self, ref: str) -> Run | None:
        """The newest batch-scoring run that recorded dataset version ``ref``
        (``NAME@VERSION``), or None: from it, its tags name the model version."""
        version = self.datasets.get(ref)
        try:
            page = self.tracking.search_runs(
                [EXPERIMENT],
                f"tags.{TAG_OUTPUT_DATASET} = '{version.ref}'",
                order_by="start_time desc",
                page_size=1,
            )
        except NotFound:  # nothing was ever scored in this workspace
            return None
        return page.items[0] if page.items else None

    # steps -------------------------------------------------------------------------------
    def _source(self, input: str | Path) -> _Source:
        path = Path(input)
        if path.exists() or isinstance(input, Path) or "@" not in str(input):
            files = self.datasets.reader.files(path)
            return _Source(str(path.resolve()), files, None, self.datasets)
        try:
            version = self.datasets.get(str(input))
        except InvalidInput as exc:
            raise InvalidInput(
                f"input {str(input)!r} is neither an existing file or folder nor a dataset "
                f"reference: {exc}"
            ) from exc
        return _Source(version.ref, [], version, self.datasets)

    def _start_run(
        self,
        mv: ModelVersion,
        uri: str,
        source: _Source,
        output: Path,
        engine: str,
        chunk_rows: int,
    ) -> Run:
        run = self.tracking.start_run(
            EXPERIMENT,
            name=f"score-{mv.model}-v{mv.version}",
            tags={
                TAG_MODEL_VERSION: mv.uri,
                TAG_MODEL_URI: uri,
                TAG_INPUT: source.text,
                TAG_OUTPUT: str(output),
                TAG_ENGINE: engine,
            },
        )
        self.tracking.log_params(run.id, {"chunk_rows": chunk_rows, "engine": engine})
        if source.dataset is not None:
            v = source.dataset
            self.tracking.log_inputs(run.id, [DatasetRef(v.name, v.version, v.digest)])
        else:
            listed = [{"path": f.path, "size": f.size, "blake3": f.digest} for f in source.files]
            self.tracking.log_artifact(run.id, "input_files.json", json.dumps(listed).encode())
        return run

    def _finish_run(self, run: Run, added: AddResult, rows: int, seconds: float) -> None:
        self.tracking.set_tags(run.id, {TAG_OUTPUT_DATASET: added.version.ref})
        now = self.tracking.clock.now_ms()
        rate = rows / seconds if seconds > 0 else 0.0
        points = [("rows", float(rows)), ("seconds", seconds), ("rows_per_second", rate)]
        self.tracking.write_metrics([(run.id, [Metric(k, v, 0, now) for k, v in points])])
        self.tracking.end_run(run.id, RunStatus.FINISHED)

    def _dask_input(self, source: _Source, scorer: Scorer, scratch: Path) -> DaskInput:
        """The files Dask reads (a stored version is exported to ``scratch`` first), and
        the schema the local engine would read, each file's columns checked."""
        schema: pa.Schema | None = None
        for where, batches in source.streams():
            try:
                first = next(batches, None)
            finally:
                _close(batches)
            if first is not None:
                scorer.check(first.schema.names, where)
                schema = _same_schema(schema, first.schema, where)
        if schema is None:
            raise InvalidInput(f"{source.text} has no rows to score")
        if source.dataset is not None:
            path = scratch / "input.parquet"
            self.datasets.export(source.dataset.ref, path)
            return DaskInput(source.text, (path,), "parquet", schema)
        csv = {Path(f.path).suffix.lower() == ".csv" for f in source.files}
        if len(csv) > 1:
            raise InvalidInput(
                f"{source.text} holds both CSV and Parquet files; the dask engine reads one "
                "format at a time: score them separately, or use the local engine"
            )
        kind: Literal["csv", "parquet"] = "csv" if csv == {True} else "parquet"
        return DaskInput(source.text, tuple(source.paths()), kind, schema)

    def _write_and_record(
        self,
        name: str,
        output: Path,
        tables: Iterator[pa.Table],
        actor: str,
        message: str,
        progress: Progress | None,
    ) -> tuple[AddResult, int]:
        """Write each scored table to ``output`` and hand its rows to a new version of
        dataset ``name``, in one pass; the file is renamed into place before the version
        is written, and neither happens if anything fails."""
        sink = _Sink(output)
        rows = 0

        def written() -> Iterator[pa.Table]:  # on a thread of its own
            for table in tables:
                sink.write(table)
                yield table

        stream = _prefetch(written(), "loopml-score-write")

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal rows
            for table in stream:
                rows += table.num_rows
                if progress is not None:
                    progress(table.num_rows)
                yield from table.to_batches()
            sink.commit()

        d = self.datasets
        # The chunks are recorded on this thread: the reader, model and writer threads
        # already keep the cores busy, and more threads would only take turns with them.
        recorder = DatasetService(
            d.store, d.blobs, _Stream(batches), d.index, d.clock, d.chunk_rows, workers=0
        )
        try:
            added = recorder.add_path(name, output, actor, message)
        finally:  # on a failure: stop every thread (or the cluster), then drop the file
            _close(stream)
            _close(tables)
            sink.abort()  # nothing left to do once committed
        return added, rows


# input -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    text: str  # as named: a path, or NAME@VERSION
    files: list[TableFile]
    dataset: DatasetVersion | None
    datasets: DatasetService

    def streams(self) -> Iterator[tuple[str, Iterator[pa.RecordBatch]]]:
        """(where, batches) of each file, or of the stored version."""
        if self.dataset is not None:
            yield self.dataset.ref, self.datasets.batches(self.dataset)
            return
        for path, f in zip(self.paths(), self.files, strict=True):
            yield str(path), f.batches()

    def paths(self) -> list[Path]:
        root = Path(self.text)
        return [root if root.is_file() else root / f.path for f in self.files]


def _chunks(source: _Source, scorer: Scorer, rows: int) -> Iterator[tuple[str, pa.Table]]:
    """Each file's rows cut into tables of ``rows`` rows (a file's last one shorter), with
    where they came from; the columns checked at each file's first batch."""
    schema: pa.Schema | None = None
    for where, batches in source.streams():
        offset = 0
        try:
            for table in rechunk(batches, rows):
                if offset == 0:
                    scorer.check(table.column_names, where)
                    schema = _same_schema(schema, table.schema, where)
                end = offset + table.num_rows
                yield f"rows {offset + 1:,}-{end:,} of {where}", table
                offset = end
        finally:
            _close(batches)


def _same_schema(first: pa.Schema | None, schema: pa.Schema, where: str) -> pa.Schema:
    if first is None or schema.equals(first):
        return schema
    ours = {f.name: str(f.type) for f in first}
    theirs = {f.name: str(f.type) for f in schema}
    problems = [f"{n!r} is missing" for n in ours if n not in theirs]
    problems += [f"{n!r} is extra" for n in theirs if n not in ours]
    problems += [f"{n!r} is {theirs[n]}, not {t}" for n, t in ours.items() if theirs.get(n, t) != t]
    raise InvalidInput(
        f"{where} does not have the columns of the files before it "
        f"({'; '.join(problems) or 'another column order'}); score files of one layout "
        "together"
    )


# threads -----------------------------------------------------------------------------
def _pipeline(
    chunks: Iterator[tuple[str, pa.Table]], scorer: Scorer, concurrent: bool
) -> Iterator[pa.Table]:
    """The scored chunks, in order: read on one thread, predicted on others.

    A model whose flavor allows it (``concurrent``) predicts up to one chunk per core at
    once when the model is what the rest waits for (:func:`map_widening`); its library's
    own OpenMP threads are then shared out, ``cores // chunks in work`` each, so that a
    model that predicts on every core (gradient boosting) does not run twice as many
    threads as cores. Several chunks at once beat one chunk on every core: each chunk's
    rows go to one thread with no hand-over between the cores."""
    most = cores() if concurrent else 1
    openmp = ThreadpoolController() if most > 1 else None

    def score(item: tuple[str, pa.Table], width: int) -> pa.Table:
        where, table = item
        if openmp is None or width == 1:
            return scorer.score_table(table, where)
        with openmp.limit(limits=max(most // width, 1), user_api="openmp"):
            return scorer.score_table(table, where)

    def predicted() -> Iterator[pa.Table]:
        read = _prefetch(chunks, "loopml-score-read")
        yield from map_widening(score, read, most, "loopml-score-model")

    return _prefetch(predicted(), "loopml-score-predict")


def _prefetch(items: Iterator[T], name: str) -> Iterator[T]:
    """``items``, advanced on a thread of their own up to ``_DEPTH`` ahead of the caller.
    An error on the thread is raised here; closing this generator stops the thread (and
    closes ``items``) after the item it is working on."""
    queue: Queue[tuple[int, Any]] = Queue(maxsize=_DEPTH)
    stop = threading.Event()

    def put(message: tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(message, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((0, item)):
                    return
            put((1, None))
        except BaseException as exc:  # handed to the caller, raised there
            put((2, exc))
        finally:
            _close(items)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = queue.get(timeout=0.1)
            except Empty:
                if not thread.is_alive() and queue.empty():
                    raise RuntimeError(f"{name} stopped without a result") from None
                continue
            if kind == 0:
                yield value
            elif kind == 1:
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join()


def _close(items: object) -> None:
    """Close a generator (its ``finally`` blocks run now); other iterators need nothing."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


# output ------------------------------------------------------------------------------
def _check_output(output: Path, source: _Source) -> None:
    folder = output.parent
    if not folder.is_dir():
        raise InvalidInput(
            f"cannot write {output}: its folder {folder} does not exist; create it first "
            "or choose another --output"
        )
    if output.is_dir():
        raise InvalidInput(f"{output} is a folder; --output takes a file name")
    if source.dataset is None:
        target = output.resolve()
        root = Path(source.text).resolve()
        if target == root or root in target.parents:
            raise InvalidInput(
                f"--output {output} is inside the input {source.text}; write it elsewhere"
            )


class _Sink:
    """The output file: Parquet (one row group per chunk) or CSV, written under a
    temporary name beside it and renamed into place by ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.csv = path.suffix.lower() == ".csv"
        self.tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.loopml-tmp")
        self.schema: pa.Schema | None = None
        self.writer: Any = None

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
            if self.csv:
                self.writer = pacsv.CSVWriter(self.tmp, self.schema)
            else:  # dictionaries only where values repeat: on distinct floats they cost
                repeats = [f.name for f in self.schema if not pa.types.is_floating(f.type)]
                self.writer = pq.ParquetWriter(self.tmp, self.schema, use_dictionary=repeats)
        elif not table.schema.equals(self.schema):
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise InvalidInput(
                    f"the scored rows changed type midway ({table.schema} after "
                    f"{self.schema}): {exc}"
                ) from exc
        try:
            if self.csv:
                self.writer.write_table(table)
            else:
                self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            kind = "CSV" if self.csv else "Parquet"
            raise InvalidInput(
                f"cannot write the scored rows as {kind} to {self.path}: {exc}"
            ) from exc

    def commit(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            raise InvalidInput("the input has no rows to score")
        writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        writer, self.writer = self.writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


class _Stream:
    """A :class:`TableReader` over rows as they are scored, so that the dataset version
    is recorded from the same pass that writes the file (never read back)."""

    def __init__(self, batches: Callable[[], Iterator[pa.RecordBatch]]) -> None:
        self.batches = batches

    def files(self, path: Path) -> list[TableFile]:
        return [TableFile("", 0, "", self.batches)]

    def read_together(self, files: Sequence[TableFile], schema: pa.Schema) -> None:
        return None  # one stream, never packed
