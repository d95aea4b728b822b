"""Per-feature metric families that keep their exposition text ready, for ``/metrics`` at the caps.

prometheus_client builds one child object per label set and formats every
sample again at each scrape: at the caps (100 model versions x 500 features,
about 160,000 series) a scrape takes seconds.  A :class:`Family` keeps, per
label set, its value and its finished exposition line (label values escaped
once, when the series appears; the value formatted when it changes) and its
text as bytes until the next change, so a scrape joins strings.

The text is what :func:`prometheus_client.generate_latest` writes for a
``Gauge`` or ``Counter`` of the same name, labels and values (label names in
sorted order, values as ``floatToGoString``, counters with their ``_created``
gauge after them unless ``PROMETHEUS_DISABLE_CREATED_SERIES`` is set), with one
difference: a label value with a lone surrogate (which prometheus_client cannot
encode, failing the whole scrape) has each surrogate written as U+FFFD.

A family is also a collector: registered in a ``CollectorRegistry`` it
collects like the prometheus_client metric would (``get_sample_value``,
``generate_latest`` of that registry, tests).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Iterable, Iterator

from prometheus_client import metrics as _pc_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["Family", "escape_label_value", "format_value"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it between the quotes (as prometheus_client does)."""
    text = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _SURROGATE.sub("\ufffd", text)
    return text


def format_value(value: float) -> str:
    """``floatToGoString(value)`` of prometheus_client, for a float, without its checks for the common case."""
    text = repr(value)
    if text[-1] in "fn" or (value > 0 and text.find(".") > 6):  # inf, nan; large numbers in Go's exponent form
        return floatToGoString(value)
    return text


def _value(line: str) -> float:
    """The value of a series' line (``+Inf``, ``NaN`` and Go's exponents read as Python reads them)."""
    return float(line[line.rindex(" ") + 1:])


def _use_created() -> bool:
    return bool(getattr(_pc_metrics, "_use_created", True))


class Family:
    """A labelled gauge or counter whose exposition text is kept up to date as values change.

    ``name`` is the exposed name (a counter's ends with ``_total``).  Label
    values are strings, given in the order of ``labelnames``.  Thread-safe:
    the worker updates, the HTTP thread renders.
    """

    def __init__(self, name: str, documentation: str, kind: str, labelnames: Iterable[str]) -> None:
        if kind not in ("gauge", "counter"):
            raise ValueError(f"kind must be 'gauge' or 'counter', not {kind!r}")
        if kind == "counter" and not name.endswith("_total"):
            raise ValueError("a counter's name ends with _total")
        self.name = name
        self.kind = kind
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._labelnames = self.labelnames  # what tests/deploy read of prometheus_client metrics too
        self._base = name[: -len("_total")] if kind == "counter" else name
        self._order = sorted(range(len(self.labelnames)), key=lambda i: self.labelnames[i])
        doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self._header = f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
        self._created_header = f"# HELP {self._base}_created {doc}\n# TYPE {self._base}_created gauge\n"
        # label values -> the series' line; its value is the text after the line's last space
        # (values have no spaces; escaped label values may): one string per series, no float beside it
        self._lines: dict[tuple[str, ...], str] = {}
        self._created: dict[tuple[str, ...], tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._text: bytes | None = None
        self._text_created: bool | None = None

    # ------------------------------------------------------------- updates
    def _labels(self, sample: str, labels: tuple[str, ...]) -> str:
        inner = ",".join(f'{self.labelnames[i]}="{escape_label_value(labels[i])}"' for i in self._order)
        return f"{sample}{{{inner}}} "

    def _store(self, labels: tuple[str, ...], value: float) -> None:
        """Set the value of ``labels`` (the lock held)."""
        line = self._lines.get(labels)
        if line is None:
            if len(labels) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected, got {len(labels)}")
            if not all(isinstance(v, str) for v in labels):
                labels = tuple(str(v) for v in labels)
            prefix = self._labels(self.name, labels)
            if self.kind == "counter":
                created = time.time()
                self._created[labels] = (created, f"{self._labels(self._base + '_created', labels)}{floatToGoString(created)}\n")
        else:
            prefix = line[: line.rindex(" ") + 1]  # values have no spaces; escaped label values may
        self._lines[labels] = f"{prefix}{format_value(value)}\n"
        self._text = None

    def set(self, labels: tuple[str, ...], value: float) -> None:
        """Set a gauge's series to ``value``."""
        value = float(value)
        with self._lock:
            line = self._lines.get(labels)
            if line is None:
                self._store(labels, value)
            else:
                cut = line.rindex(" ") + 1
                text = format_value(value)
                if line[cut:-1] != text:
                    self._lines[labels] = f"{line[:cut]}{text}\n"
                    self._text = None

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0 for a counter) to a series, creating it at 0."""
        amount = float(amount)
        if self.kind == "counter" and amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        with self._lock:
            line = self._lines.get(labels)
            self._store(labels, (_value(line) if line is not None else 0.0) + amount)

    def remove(self, labels: tuple[str, ...]) -> None:
        """Drop a series (no error if it is not there)."""
        with self._lock:
            if self._lines.pop(labels, None) is not None:
                self._created.pop(labels, None)
                self._text = None

    def get(self, labels: tuple[str, ...]) -> float | None:
        """The value of a series, None if it has none."""
        line = self._lines.get(labels)
        return _value(line) if line is not None else None

    def items(self) -> list[tuple[tuple[str, ...], float]]:
        """(labels, value) of every series, in the order they appeared."""
        with self._lock:
            lines = list(self._lines.items())
        return [(labels, _value(line)) for labels, line in lines]

    def __len__(self) -> int:
        return len(self._lines)

    # ------------------------------------------------------------- output
    def text(self) -> bytes:
        """The family's exposition text (UTF-8), as generate_latest writes it."""
        created = self.kind == "counter" and _use_created()
        with self._lock:
            if self._text is None or self._text_created != created:
                parts = [self._header, *self._lines.values()]
                if created and self._created:
                    parts.append(self._created_header)
                    parts.extend(line for _, line in self._created.values())
                self._text = "".join(parts).encode("utf-8")
                self._text_created = created
            return self._text

    def describe(self) -> Iterator[Metric]:
        yield Metric(self._base, self.documentation, self.kind)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self._base, self.documentation, self.kind)
        with self._lock:
            values = [(labels, _value(line)) for labels, line in self._lines.items()]
            created = dict(self._created) if self.kind == "counter" and _use_created() else {}
        for labels, value in values:
            names = dict(zip(self.labelnames, labels))
            metric.add_sample(self.name, names, value)
            if labels in created:
                metric.add_sample(self._base + "_created", names, created[labels][0])
        yield metric
