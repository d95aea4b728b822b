"""The terminal view of ``driftline demo``: progress, events/s, features with their drift statistics, alerts.

:class:`DemoView` holds what the demo has done (events sent, alerts received)
and reads the rest from the worker's own Prometheus metrics, the same numbers
a dashboard would show: records processed, dead letters, and per feature the
latest window's drift statistics and missing ratio.  :meth:`DemoView.render`
turns that into one rich renderable; the demo shows it in a ``rich.live.Live``
on a terminal and prints it once at the end otherwise.  Nothing here talks to
Kafka.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from driftline.observability.metrics import WorkerMetrics
from driftline.observability.status import active_alerts

__all__ = ["DemoView", "feature_rows", "format_alert"]

#: (statistic label, column title, format) of the features table.
#: (statistic label, column title, format) of the features table, narrow enough for 80 columns:
#: shift = mean shift in reference sd, spread = sd ratio (numeric); KS; PSI (numeric and categorical).
COLUMNS = (("mean_shift_sd", "shift", "+.2f"), ("spread_ratio", "spread", ".2f"), ("ks", "KS", ".3f"),
           ("psi", "PSI", ".3f"))


def _samples(metric: Any) -> list[Any]:
    return [s for family in metric.collect() for s in family.samples]


def _total(metric: Any, suffix: str = "_total") -> float:
    return sum(s.value for s in _samples(metric) if s.name.endswith(suffix))


def feature_rows(metrics: WorkerMetrics, alerts: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per (model, model_version, feature) with a drift statistic in ``metrics``.

    ``drift`` maps statistic names to the latest window's values
    (``driftline_feature_drift_statistic``), ``missing_ratio`` comes from
    ``driftline_feature_missing_ratio`` and ``firing`` lists the detectors of
    the feature's alert keys firing now, folded from ``alerts`` (the table
    shows their number; the alert lines above it say which).
    """
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in _samples(metrics.drift_statistic):
        key = (s.labels["model"], s.labels["model_version"], s.labels["feature"])
        row = rows.setdefault(key, {"model": key[0], "model_version": key[1], "feature": key[2], "drift": {},
                                    "missing_ratio": None, "firing": []})
        row["drift"][s.labels["statistic"]] = s.value
    for s in _samples(metrics.missing_ratio):
        key = (s.labels["model"], s.labels["model_version"], s.labels["feature"])
        if key in rows:
            rows[key]["missing_ratio"] = s.value
    for a in active_alerts(alerts or []):
        key = (str(a["model"]), str(a["model_version"]), str(a["feature"]))
        if key in rows:
            rows[key]["firing"].append(str(a["detector"]))
    return [rows[k] for k in sorted(rows)]


def format_alert(alert: dict[str, Any]) -> Text:
    """One line per alert, as it fires or resolves."""
    status = str(alert.get("status", "?"))
    line = Text()
    line.append(f"{status.upper():8} ", style="bold red" if status == "firing" else "green")
    line.append(f"{alert.get('kind')} ", style="bold")
    window = alert.get("window") if isinstance(alert.get("window"), dict) else {}
    line.append(f"{alert.get('feature')} / {alert.get('detector')} at offset {window.get('last_offset')}: ")
    line.append(str(alert.get("summary", "")).strip())
    return line


class DemoView:
    """What the demo shows while it runs; ``render()`` is called by ``rich.live.Live`` a few times a second.

    :meth:`add_alert` may be called from the worker's thread; everything else
    from one thread at a time (the live refresh or the demo's main loop).
    """

    def __init__(self, metrics: WorkerMetrics, *, total: int, rate_window: float = 2.0) -> None:
        self.metrics = metrics
        self.total = total
        self.sent = 0
        self.started = time.monotonic()
        self._alerts: list[dict[str, Any]] = []
        self._printed = 0
        self._lock = threading.Lock()
        self._history: deque[tuple[float, int, float]] = deque()
        self._rate_window = rate_window
        self._finished: list[float | None] = [None, None]  # when all events were sent / processed

    # ------------------------------------------------------------ input
    def start(self, now: float | None = None) -> None:
        """The events start now: elapsed time and rates count from here."""
        self.started = time.monotonic() if now is None else now
        self._history.clear()
        self._finished = [None, None]
        self._history.append((self.started, self.sent, self.processed))

    def add_alert(self, alert: dict[str, Any]) -> None:
        """The worker's ``on_alert`` callback."""
        with self._lock:
            self._alerts.append(alert)

    @property
    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._alerts)

    def new_alerts(self) -> list[dict[str, Any]]:
        """Alerts received since the last call (to print them once, as they fire)."""
        with self._lock:
            fresh = self._alerts[self._printed:]
            self._printed = len(self._alerts)
        return fresh

    # ------------------------------------------------------------ numbers
    @property
    def processed(self) -> float:
        return _total(self.metrics.records)

    @property
    def dead_letters(self) -> float:
        return _total(self.metrics.dead_letters)

    def rates(self, now: float | None = None) -> tuple[float, float]:
        """Events sent and records processed per second.

        Over the last ``rate_window`` seconds while they run; once all
        ``total`` are sent (processed), the average from :meth:`start` to the
        moment that was first seen, so the final frame keeps a useful number.
        """
        now = time.monotonic() if now is None else now
        processed = self.processed
        self._history.append((now, self.sent, processed))
        while len(self._history) > 2 and now - self._history[1][0] >= self._rate_window:
            self._history.popleft()
        t0, sent0, done0 = self._history[0]
        span = now - t0
        out = []
        for i, (count, first) in enumerate(((self.sent, sent0), (processed, done0))):
            if count >= self.total:
                self._finished[i] = self._finished[i] or now
                elapsed = self._finished[i] - self.started
                out.append(count / elapsed if elapsed > 0 else 0.0)
            else:
                out.append((count - first) / span if span > 0 else 0.0)
        return out[0], out[1]

    # ------------------------------------------------------------ rendering
    def progress(self, now: float | None = None) -> Table:
        sent_rate, done_rate = self.rates(now)
        processed = self.processed
        grid = Table.grid(padding=(0, 1))
        for justify in ("left", "left", "right", "right"):
            grid.add_column(justify=justify)  # type: ignore[arg-type]
        grid.add_row("events sent", ProgressBar(total=self.total, completed=min(self.sent, self.total), width=40),
                     f"{self.sent:,} / {self.total:,}", f"{sent_rate:,.0f} events/s")
        grid.add_row("processed", ProgressBar(total=self.total, completed=min(processed, self.total), width=40),
                     f"{processed:,.0f} / {self.total:,}", f"{done_rate:,.0f} events/s")
        return grid

    def counters(self, now: float | None = None) -> Text:
        alerts = self.alerts
        firing = sum(1 for a in alerts if a.get("status") == "firing")
        resolved = len(alerts) - firing
        active = len(active_alerts(alerts))
        now = time.monotonic() if now is None else now
        line = Text()
        line.append(f"alerts: {firing} fired", style="bold red" if firing else "")
        line.append(f", {resolved} resolved, {active} active · dead letters: {self.dead_letters:,.0f} · "
                    f"elapsed {now - self.started:.1f} s")
        return line

    def features(self) -> Table | Text:
        rows = feature_rows(self.metrics, self.alerts)
        if not rows:
            return Text("features: waiting for the first window to close (warm-up first)", style="dim")
        versions = sorted({f"{r['model']} {r['model_version']}" for r in rows})
        table = Table(title=Text(f"{', '.join(versions)}: latest window's drift statistics"), title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("feature", overflow="fold")
        for _, title, _ in COLUMNS:
            table.add_column(title, justify="right", no_wrap=True)
        table.add_column("missing", justify="right", no_wrap=True)
        table.add_column("firing", justify="right", no_wrap=True)
        for r in rows:
            d = r["drift"]
            name = r["feature"] if len(versions) == 1 else f"{r['model']} {r['model_version']} {r['feature']}"
            table.add_row(Text(name), *(format(d[stat], spec) if stat in d else "-" for stat, _, spec in COLUMNS),
                          format(r["missing_ratio"], ".1%") if r["missing_ratio"] is not None else "-",
                          Text(str(len(r["firing"])) if r["firing"] else "-", style="bold red" if r["firing"] else "dim"))
        return table

    def render(self, now: float | None = None) -> RenderableType:
        return Group(self.progress(now), self.counters(now), self.features())

    def __rich__(self) -> RenderableType:
        return self.render()
