"""Files as a source of records, so a replay runs the same pipeline as the live stream.

* JSONL: each line is one record value, exactly as a model server would
  produce it to Kafka.
* CSV and Parquet (read with pyarrow): one row per prediction; a ``model``
  column or the ``model`` argument names the model, ``model_version``,
  ``event_id`` and ``timestamp`` columns are used when present, the
  ``prediction`` column (configurable) is the output and every other column is
  a feature.  Rows are turned into input-contract JSON, so they go through the
  very decoder the worker uses.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import orjson

from driftline.contract.event import DEFAULT_MODEL_VERSION, SourceRecord
from driftline.reference.builder import ColumnValues
from driftline.errors import ConfigError

__all__ = ["read_records", "read_table_batches", "TableBatch", "FILE_FORMATS"]

FILE_FORMATS = ("jsonl", "csv", "parquet")
_RESERVED = ("model", "model_version", "event_id", "timestamp")


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
                 prediction_column: str = "prediction") -> Iterator[SourceRecord]:
    """Records of a file, numbered like offsets of one partition."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"input file {str(path)!r} does not exist")
    kind = _format(path, fmt)
    name = topic or path.name
    if kind == "jsonl":
        with path.open("rb") as handle:
            offset = 0
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                yield SourceRecord(name, partition, offset, None, None, line, ())
                offset += 1
        return
    yield from _table_records(path, kind, name, partition, model, model_version, prediction_column)


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
                   model_version: str | None, prediction_column: str) -> Iterator[SourceRecord]:
    table = _read_table(path, kind)
    columns = table.column_names
    if "model" not in columns and model is None:
        raise ConfigError(f"{str(path)!r} has no 'model' column; pass --model")
    features = [c for c in columns if c not in _RESERVED and c != prediction_column]
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
            if prediction_column in row and row[prediction_column] is not None:
                doc["prediction"] = _scalar(row[prediction_column])
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
    model: str
    model_version: str
    rows: int
    features: dict[str, ColumnValues]
    prediction: ColumnValues | None


def read_table_batches(path: str | Path, *, fmt: str | None = None, model: str | None = None,
                       model_version: str | None = None, prediction_column: str = "prediction",
                       batch_rows: int = 65_536) -> Iterator[TableBatch] | None:
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
    features = [c for c in names if c not in _RESERVED and c != prediction_column]

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

    def batches() -> Iterator[TableBatch]:
        for batch in table.to_batches(max_chunksize=batch_rows):
            cols = dict(zip(batch.schema.names, batch.columns))
            yield TableBatch(str(ids["model"]), str(ids["model_version"]), batch.num_rows,
                             {f: convert(cols[f]) for f in features},
                             convert(cols[prediction_column]) if prediction_column in cols else None)

    return batches()
