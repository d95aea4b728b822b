"""Files as a source of records, so a replay runs the same pipeline as the live stream.

* JSONL: each line is one record value, exactly as a model server would
  produce it to Kafka.
* CSV and Parquet (read with pyarrow): one row per prediction; a ``model``
  column or the ``model`` argument names the model, ``model_version``,
  ``event_id`` and ``timestamp`` columns are used when present, the
  prediction columns (:func:`prediction_columns`) are the outputs and every
  other column is a feature.  Rows are turned into input-contract JSON, so
  they go through the very decoder the worker uses.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import orjson

from driftline.contract.event import DEFAULT_MODEL_VERSION, PREDICTION, SourceRecord
from driftline.reference.builder import ColumnValues
from driftline.errors import ConfigError
from driftline.redact import bounded

__all__ = ["read_records", "read_table_batches", "TableBatch", "FILE_FORMATS", "prediction_columns", "output_name"]

FILE_FORMATS = ("jsonl", "csv", "parquet")
_RESERVED = ("model", "model_version", "event_id", "timestamp")

def prediction_columns(value: str | Sequence[str] | None) -> list[str]:
    """The prediction columns named by ``--prediction-column`` (repeatable, or comma-separated).

    >>> prediction_columns(None), prediction_columns("score, proba"), prediction_columns(["score", "proba,score"])
    (['prediction'], ['score', 'proba'], ['score', 'proba'])
    """
    if value is None:
        return [PREDICTION]
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        for name in item.split(","):
            name = name.strip()
            if name and name not in out:
                out.append(name)
    if not out:
        raise ConfigError("--prediction-column: name a column (or several, comma-separated)")
    if f"{PREDICTION}." in out:
        raise ConfigError(f"--prediction-column: {PREDICTION + '.'!r} names no output; a column 'prediction.C' "
                          "is the output 'prediction.C'")
    if PREDICTION in out and len(out) > 1:
        raise ConfigError(f"--prediction-column: {PREDICTION!r} is the scalar output, which a record cannot carry "
                          f"together with named outputs ({bounded(', '.join(c for c in out if c != PREDICTION), 200)}); "
                          f"rename the column, e.g. to 'prediction.value'")
    return out


def output_name(column: str) -> str:
    """The output a prediction column is monitored as, as the decoder names a record's outputs.

    The column ``prediction`` is the scalar output ``prediction`` (a record's ``"prediction": 0.9``); any
    other column ``C`` is the named output ``prediction.C`` (``"prediction": {"C": 0.9}``), and a column
    already named ``prediction.C`` is that output too.

    >>> output_name("prediction"), output_name("score"), output_name("prediction.score")
    ('prediction', 'prediction.score', 'prediction.score')
    """
    if column == PREDICTION or column.startswith(PREDICTION + "."):
        return column
    return f"{PREDICTION}.{column}"


def _resolve_outputs(path: Path, names: Sequence[str], value: str | Sequence[str] | None,
                     warn: Callable[[str], None] | None) -> list[str]:
    """The prediction columns of a table that it has: a named column it lacks is an error; the default
    ``prediction`` absent is a warning (the profile then has no output)."""
    wanted = prediction_columns(value)
    absent = [c for c in wanted if c not in names]
    if [c for c in absent if c != PREDICTION]:
        shown = ", ".join(bounded(repr(c), 80) for c in names[:20]) + (", ..." if len(names) > 20 else "")
        raise ConfigError(f"--prediction-column: {bounded(repr(str(path)), 200)} has no column "
                          f"{bounded(', '.join(repr(c) for c in absent), 300)} (its columns: {shown})")
    if absent and warn is not None:
        guesses = [bounded(repr(c), 80) for c in names if c not in _RESERVED][:8]
        warn(f"{path.name}: no prediction column {PREDICTION!r}, so no model output is profiled or replayed; "
             "name the column(s) holding the model's outputs with --prediction-column (e.g. --prediction-column "
             f"score for outputs logged as {{\"score\": ...}}, monitored as 'prediction.score')"
             + (f"; the columns are: {', '.join(guesses)}" if guesses else ""))
    return [c for c in wanted if c in names]


def _format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "parquet"):
        return suffix
    raise ConfigError(f"cannot tell the format of {str(path)!r} from its name; pass --format ({', '.join(FILE_FORMATS)})")


def read_records(path: str | Path, *, topic: str | None = None, partition: int = 0, fmt: str | None = None,
                 model: str | None = None, model_version: str | None = None,
                 prediction_column: str | Sequence[str] | None = None,
                 warn: Callable[[str], None] | None = None) -> Iterator[SourceRecord]:
    """Records of a file, numbered like offsets of one partition.

    ``prediction_column``: the output column(s) of a table (:func:`prediction_columns`, :func:`output_name`);
    ``warn`` is told when a table lacks the default ``prediction`` column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"input file {str(path)!r} does not exist")
    kind = _format(path, fmt)
    name = topic or path.name
    if kind == "jsonl":
        if prediction_column is not None and warn is not None:
            warn(f"{path.name}: --prediction-column is for tables; JSONL records carry their own 'prediction'")
        with path.open("rb") as handle:
            offset = 0
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                yield SourceRecord(name, partition, offset, None, None, line, ())
                offset += 1
        return
    yield from _table_records(path, kind, name, partition, model, model_version, prediction_column, warn)


def _read_table(path: Path, kind: str):
    try:
        if kind == "csv":
            from pyarrow import csv as pa_csv

            return pa_csv.read_csv(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except ImportError as exc:
        raise ConfigError("reading CSV or Parquet needs pyarrow: pip install 'driftline[files]'") from exc


def _table_records(path: Path, kind: str, topic: str, partition: int, model: str | None,
                   model_version: str | None, prediction_column: str | Sequence[str] | None,
                   warn: Callable[[str], None] | None) -> Iterator[SourceRecord]:
    table = _read_table(path, kind)
    columns = table.column_names
    if "model" not in columns and model is None:
        raise ConfigError(f"{str(path)!r} has no 'model' column; pass --model")
    outputs = _resolve_outputs(path, columns, prediction_column, warn)
    scalar = outputs == [PREDICTION]
    keys = [output_name(c)[len(PREDICTION) + 1:] for c in outputs]  # the keys of a "prediction" object
    features = [c for c in columns if c not in _RESERVED and c not in outputs]
    offset = 0
    for batch in table.to_batches(max_chunksize=10_000):
        rows = batch.to_pylist()
        for row in rows:
            row_model = row.get("model")
            doc: dict[str, object] = {
                "model": row_model if row_model is not None else model,
                "features": {f: _scalar(row[f]) for f in features},
            }
            version = row.get("model_version") or model_version
            if version is not None:
                doc["model_version"] = str(version)
            if row.get("event_id") is not None:
                doc["event_id"] = str(row["event_id"])
            if row.get("timestamp") is not None:
                ts = row["timestamp"]
                doc["timestamp"] = ts if isinstance(ts, (int, str)) else int(ts.timestamp() * 1000)
            if scalar:
                if row[PREDICTION] is not None:
                    doc["prediction"] = _scalar(row[PREDICTION])  # NaN: null, no output (as in a table batch)
            elif outputs:
                named = {k: v for k, c in zip(keys, outputs) if (v := _scalar(row[c])) is not None}
                if named:
                    doc["prediction"] = named
            yield SourceRecord(topic, partition, offset, None, None, orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS), ())
            offset += 1


def _scalar(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # orjson cannot write NaN; a missing value is what a CSV gap means
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, Decimal):
        return _scalar(float(value))
    return str(value)


class TableBatch(NamedTuple):
    """Rows of a table column by column: ``outputs`` keyed by output name (``prediction``,
    ``prediction.score``), ``output_rows`` the rows with a value in any of them (the records that
    would carry a ``prediction``)."""

    model: str
    model_version: str
    rows: int
    features: dict[str, ColumnValues]
    outputs: dict[str, ColumnValues]
    output_rows: int


def read_table_batches(path: str | Path, *, fmt: str | None = None, model: str | None = None,
                       model_version: str | None = None, prediction_column: str | Sequence[str] | None = None,
                       batch_rows: int = 65_536, warn: Callable[[str], None] | None = None
                       ) -> Iterator[TableBatch] | None:
    """A CSV or Parquet table column by column, for building reference profiles fast.

    Gives the values :func:`read_records` would give, without a JSON round
    trip per row.  Returns ``None`` when the table cannot be read that way (a
    JSONL file, or ``model`` / ``model_version`` columns holding several
    values): use :func:`read_records` then.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"input file {str(path)!r} does not exist")
    kind = _format(path, fmt)
    if kind == "jsonl":
        return None
    table = _read_table(path, kind)
    names = table.column_names
    if "model" not in names and model is None:
        raise ConfigError(f"{str(path)!r} has no 'model' column; pass --model")
    if "model" in names and not pa.types.is_string(table["model"].type):
        return None
    ids: dict[str, str | None] = {"model": model, "model_version": model_version or DEFAULT_MODEL_VERSION}
    for column in ("model", "model_version"):
        if column in names:
            col = table[column]
            values = {str(v) for v in pc.unique(col.drop_null()).to_pylist()}
            if col.null_count:
                values.add(ids[column])  # type: ignore[arg-type]  # null cells take the argument's value
            if len(values) != 1 or None in values:
                return None  # several model versions (or rows without a model): row by row
            ids[column] = values.pop()
    outputs = _resolve_outputs(path, names, prediction_column, warn)
    features = [c for c in names if c not in _RESERVED and c not in outputs]

    def convert(array) -> ColumnValues:
        t = array.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            values = array.cast(pa.float64()).to_numpy(zero_copy_only=False)
            finite = values[np.isfinite(values)]  # nulls arrive as NaN
            return ColumnValues(finite, None, int(finite.size))
        if pa.types.is_boolean(t):
            labels = ["true" if v else "false" for v in array.to_pylist() if v is not None]
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            labels = [v for v in array.to_pylist() if v is not None]
        else:
            labels = [str(_scalar(v)) for v in array.to_pylist() if v is not None]
        return ColumnValues(None, Counter(labels), len(labels))

    def has_value(array):
        valid = pc.is_valid(array)
        if pa.types.is_floating(array.type):
            valid = pc.and_(valid, pc.fill_null(pc.is_finite(array), False))
        return valid

    def batches() -> Iterator[TableBatch]:
        for batch in table.to_batches(max_chunksize=batch_rows):
            cols = dict(zip(batch.schema.names, batch.columns))
            values = {output_name(c): convert(cols[c]) for c in outputs}
            if len(outputs) > 1:  # the rows with a value (not null, not NaN) in any output column
                carried = int(pc.sum(functools.reduce(pc.or_, map(has_value, (cols[c] for c in outputs)))
                                     .cast(pa.int64())).as_py() or 0)
            else:
                carried = sum(v.present for v in values.values())
            yield TableBatch(str(ids["model"]), str(ids["model_version"]), batch.num_rows,
                             {f: convert(cols[f]) for f in features}, values, carried)

    return batches()
