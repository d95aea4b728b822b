"""Ground truth for one model on one partition: label join, performance, concept drift,
unreasonable outputs and champion / challenger.

Inference events and label records of a model meet here (both topics are
keyed by model and co-partitioned, so they reach the same worker).  Of each
inference only what scoring needs is kept (version, event time, predicted
value or class, score) until its label arrives, within a join window bounded
in event time (``join_window_ms``) and in entries (``max_pending``).  Labels
that arrive first wait the same way.  Every label ends in exactly one count:
``joined`` (and, of those, ``early``: it arrived before its inference),
``late`` (after the join window), ``duplicate`` or ``unmatched`` (its
inference never came); inferences that expire without a label count as
``unlabeled``, those pushed out by the entry cap as ``evicted``.

Per model version: classification or regression metrics per window and
cumulative, the label-free accuracy estimate of a binary classifier's scores
(confidence-based: the mean of max(p, 1 − p)), ADWIN on the per-record error
for concept drift, output rules and the rate of confident errors.  Two
versions that score the same ``event_id`` are compared pair by pair.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from river import drift

from driftline.contract.columns import OUTPUTS
from driftline.contract.label import LabelEvent, class_text, label_text
from driftline.detection.findings import Finding, Kind, Severity, WindowSpan
from driftline.stats.calibration import adwin_delta
from driftline.stats.performance import ClassificationStats, RegressionStats, RunningMean, wilson_lower

__all__ = ["ModelRules", "OutcomeSettings", "OutcomeMonitor", "OutcomeOutput", "LabelOutcome", "Rule"]

CLASSIFICATION = "classification"
REGRESSION = "regression"


class LabelOutcome:
    """Where each label (and each unlabeled inference) ends up: ``driftline_labels_total{outcome}``."""

    JOINED = "joined"
    EARLY = "early"
    LATE = "late"
    DUPLICATE = "duplicate"
    UNMATCHED = "unmatched"
    UNLABELED = "unlabeled"
    EVICTED = "evicted"
    ALL = (JOINED, EARLY, LATE, DUPLICATE, UNMATCHED, UNLABELED, EVICTED)


class Rule:
    """Names of the output checks (the ``detector`` of ``output_quality`` alerts and rule labels)."""

    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_CLASS = "unknown_class"
    NOT_A_PROBABILITY = "not_a_probability"
    MISSING_OUTPUT = "missing_output"
    OUTPUT_RULES = "output_rules"
    CONFIDENT_ERRORS = "confident_errors"
    CONCEPT_DRIFT = "adwin_error"
    DISAGREEMENT = "disagreement"
    MEAN_DIFFERENCE = "mean_difference"


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What a model's outputs mean and which values are unreasonable (setting ``models``)."""

    task: str = "auto"
    prediction: str = "prediction"
    score: str | None = None
    positive_class: str | None = None
    decision_threshold: float = 0.5
    valid_range: tuple[float, float] | None = None
    allowed_classes: tuple[str, ...] | None = None
    probability_outputs: tuple[str, ...] = ()
    confidence_threshold: float = 0.9
    max_confident_error_rate: float = 0.05
    max_violation_rate: float = 0.0
    max_disagreement: float = 0.05
    max_mean_difference_sd: float = 0.2


@dataclass(frozen=True, slots=True)
class OutcomeSettings:
    labels_topic: str
    join_window_ms: float
    max_pending: int
    #: design false alarms per labeled record of the concept-drift detector
    false_alarm_rate: float
    window_events: int
    window_seconds: float | None
    rules: dict[str, ModelRules] = field(default_factory=dict)
    label_warmup: int = 500
    block: int = 32
    min_window_values: int = 20
    window_alpha: float = 1e-3
    #: longest predicted class kept as it is (longer: its bounded form, as string labels get)
    max_text_chars: int = 256

    def rules_for(self, model: str) -> ModelRules:
        return self.rules.get(model) or _DEFAULT_RULES


_DEFAULT_RULES = ModelRules()


_new = tuple.__new__  # NamedTuples without their Python-level __new__ (hot path)


class _Prediction(NamedTuple):
    """What is kept of an inference until its label arrives."""

    version: str
    time_ms: int | None
    value: float | None
    raw: object  # the predicted value or class as sent (a class name is made of it only when needed)
    score: float | None
    offset: int


def _ks(a: list[float], b: list[float]) -> float | None:
    """Two-sample Kolmogorov-Smirnov distance between the two versions' predictions."""
    if not a or not b:
        return None
    xa, xb = np.sort(np.asarray(a)), np.sort(np.asarray(b))
    grid = np.concatenate((xa, xb))
    return float(np.max(np.abs(np.searchsorted(xa, grid, side="right") / xa.size
                               - np.searchsorted(xb, grid, side="right") / xb.size)))


def _float(value: object) -> float:
    """A JSON number as a double; an integer beyond a double's range is infinite."""
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf


def _preds(entry: tuple) -> tuple[_Prediction, ...]:
    return entry if type(entry) is tuple else (entry,)  # type: ignore[return-value]


def _first_time(entry: tuple) -> int | None:
    return min((p.time_ms for p in _preds(entry) if p.time_ms is not None), default=None)


@dataclass(slots=True)
class OutcomeOutput:
    findings: list[Finding] = field(default_factory=list)
    summaries: list[dict[str, object]] = field(default_factory=list)
    #: (model, outcome) -> count, for ``driftline_labels_total``
    labels: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (model, rule) -> violations, for ``driftline_output_violations_total``
    violations: dict[tuple[str, str], int] = field(default_factory=dict)


class _ErrorDrift:
    """ADWIN on standardised block means of the per-record loss (as the feature detectors).

    The warm-up sets the loss's mean and scale.  Absolute errors are clipped at
    the warm-up's 99.9th percentile: one huge error of a heavy-tailed model
    would otherwise move a block mean by several standard errors (measured:
    Student-t errors raised 11× the budgeted false alarms unclipped, none
    clipped, at no cost in delay).  A 0/1 loss gets a scale floor of
    ``1/sqrt(warmup)``, so a model without errors in warm-up still has one.
    """

    __slots__ = ("warm", "mu", "sd", "block", "pending", "adwin", "recent", "cap")

    CLIP_QUANTILE = 0.999

    #: blocks behind the "after" value of a detection
    RECENT = 4

    def __init__(self, delta: float, block: int) -> None:
        self.warm: list[float] = []
        self.mu = 0.0
        self.sd = 0.0
        self.block = block
        self.pending: list[float] = []
        self.adwin = drift.ADWIN(delta=delta, clock=1)
        self.recent: list[float] = []
        self.cap = math.inf

    def add(self, loss: float, warmup: int, *, binary: bool = False) -> tuple[float, float] | None:
        """Feed one loss (``binary``: a 0/1 error); return (before, after) mean loss when it rose significantly."""
        if len(self.warm) < warmup:
            self.warm.append(loss)
            if len(self.warm) == warmup:
                warm = np.asarray(self.warm)
                if not binary:
                    self.cap = float(np.quantile(warm, self.CLIP_QUANTILE))
                    warm = np.minimum(warm, self.cap)
                n = warm.size
                self.mu = float(warm.mean())
                var = float(warm.var(ddof=1)) if n > 1 else 0.0
                if binary:
                    self.sd = math.sqrt(max(var, 1.0 / n))  # a model without errors in warm-up still has a scale
                else:
                    self.sd = math.sqrt(var) if var > 0 else 1e-12 * max(1.0, abs(self.mu))
            return None
        self.pending.append(min(loss, self.cap))
        if len(self.pending) < self.block:
            return None
        mean = sum(self.pending) / len(self.pending)
        self.pending = []
        self.recent = (self.recent + [mean])[-self.RECENT:]
        scale = self.sd / math.sqrt(self.block)
        before = self.mu + self.adwin.estimation * scale  # the long-run loss ADWIN held until now
        self.adwin.update((mean - self.mu) / scale)
        if self.adwin.drift_detected:
            after = sum(self.recent) / len(self.recent)  # the loss of the last few blocks
            if after > before:
                return before, after
        return None


class _Version:
    """Outcome state of one model version."""

    __slots__ = ("task", "positive", "window", "total", "inferences", "window_inferences", "labeled", "joined",
                 "drift", "confident", "confident_wrong", "violations", "est_sum", "est_n")

    def __init__(self, delta: float, block: int) -> None:
        self.task: str | None = None
        self.positive: str | None = None
        self.window: ClassificationStats | RegressionStats | None = None
        self.total: ClassificationStats | RegressionStats | None = None
        self.inferences = 0
        self.window_inferences = 0
        self.labeled = 0  # labels scored
        self.joined = 0   # labels joined to this version's inferences
        self.drift = _ErrorDrift(delta, block)
        self.confident = 0
        self.confident_wrong = 0
        self.violations: dict[str, int] = {}
        self.est_sum = 0.0
        self.est_n = 0

    def reset_window(self) -> None:
        self.window = type(self.total)() if self.total is not None else None
        self.window_inferences = 0
        self.confident = self.confident_wrong = 0
        self.violations = {}
        self.est_sum = 0.0
        self.est_n = 0


class _Pair:
    """Champion (``a``) and challenger (``b``) on the same events, in one window."""

    __slots__ = ("pairs", "classed", "disagree", "diff", "a_values", "loss_diff", "a_sample", "b_sample")

    #: paired numeric predictions kept per window for the distribution distance
    SAMPLE = 20_000
    #: pairs of versions compared per window and partition (the first ones met); more are not compared,
    #: so memory and summaries stay bounded however many versions score the same events
    MAX_PAIRS = 10

    def __init__(self) -> None:
        self.pairs = 0
        self.classed = 0  # pairs whose predictions are classes (or scores of one)
        self.disagree = 0
        self.diff = RunningMean()       # b − a of numeric predictions
        self.a_values = RunningMean()   # the champion's predictions (for their sd)
        self.loss_diff = RunningMean()  # loss_b − loss_a on labeled events
        self.a_sample: list[float] = []
        self.b_sample: list[float] = []


class OutcomeMonitor:
    """Labels, performance and output checks of one model on one partition."""

    def __init__(self, *, topic: str, partition: int, model: str, settings: OutcomeSettings) -> None:
        self.topic = topic
        self.partition = partition
        self.model = model
        self.settings = settings
        self.rules = settings.rules_for(model)
        self.configured = model in settings.rules
        # ADWIN sees one standardised block score per ``block`` labels, as the feature detectors see
        # one per pair of blocks, so the measured delta ↔ rate relation holds (conservatively).
        self._delta = adwin_delta(false_alarm_rate=settings.false_alarm_rate)
        # one _Prediction per waiting event, or a plain tuple of them when several versions scored it
        # (tuples of plain values keep the garbage collector's work flat however many wait)
        self.pending: OrderedDict[str, tuple] = OrderedDict()
        self.early: OrderedDict[str, tuple[object, int | None, int]] = OrderedDict()
        self.done: OrderedDict[str, tuple[object, int | None]] = OrderedDict()
        self.expired: OrderedDict[str, None] = OrderedDict()
        self.versions: dict[str, _Version] = {}
        self.pairs: dict[tuple[str, str], _Pair] = {}
        self.counts = {o: 0 for o in LabelOutcome.ALL}
        self.window_counts = {o: 0 for o in LabelOutcome.ALL}
        self._watermark: int | None = None
        self._window_records = 0
        self._window_start: int | None = None
        self._first_offset: dict[str, int] = {}
        self._last: tuple[str, int, int | None] = (topic, 0, None)

    # ------------------------------------------------------------ checkpoints
    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["settings"] = None
        return state

    def reattach(self, settings: OutcomeSettings) -> None:
        """After a checkpoint is decoded: the worker's settings (rules included) from now on."""
        self.settings = settings
        self.rules = settings.rules_for(self.model)
        self.configured = self.model in settings.rules

    # ----------------------------------------------------------------- intake
    def inference(self, version: str, event_id: str | None, time_ms: int | None, outputs: dict[str, object] | None,
                  offset: int, topic: str, out: OutcomeOutput) -> None:
        """An inference of this model (call in offset order)."""
        self._touch(topic, offset, time_ms)
        v = self._version(version)
        v.inferences += 1
        v.window_inferences += 1
        pred = self._prediction(v, version, time_ms, outputs, offset, out)
        if event_id is None or pred is None:
            return
        entry = self.pending.get(event_id)
        if entry is not None:
            for other in _preds(entry):
                if other.version != version:
                    self._compare(other, pred)
        elif event_id in self.done:
            label, label_time = self.done[event_id]
            self._score(pred, label, label_time, out)
            return
        early = self.early.pop(event_id, None) if self.early else None
        if early is not None:
            label, label_time, _ = early
            self._count(LabelOutcome.EARLY, out)
            self._count(LabelOutcome.JOINED, out)
            self._remember(event_id, label, label_time)
            self._score(pred, label, label_time, out)
            return
        if entry is None:
            self.pending[event_id] = pred
            if len(self.pending) > self.settings.max_pending:
                self.pending.popitem(last=False)
                self._count(LabelOutcome.EVICTED, out)
        else:
            self.pending[event_id] = tuple(p for p in _preds(entry) if p.version != version) + (pred,)

    def label(self, label: LabelEvent, offset: int, topic: str, out: OutcomeOutput) -> None:
        """A label of this model (call in offset order)."""
        self._touch(topic, offset, label.timestamp_ms)
        event_id = label.event_id
        if event_id in self.done:
            self._count(LabelOutcome.DUPLICATE, out)
            return
        entry = self.pending.pop(event_id, None)
        if entry is not None:
            window = self.settings.join_window_ms
            first = _first_time(entry)
            if label.timestamp_ms is not None and first is not None and label.timestamp_ms - first > window:
                self._count(LabelOutcome.LATE, out)
                self.expired[event_id] = None
                if len(self.expired) > self.settings.max_pending:
                    self.expired.popitem(last=False)
                return
            self._count(LabelOutcome.JOINED, out)
            self._remember(event_id, label.label, label.timestamp_ms)
            preds = _preds(entry)
            losses = {pred.version: self._score(pred, label.label, label.timestamp_ms, out) for pred in preds}
            if len(preds) > 1:
                self._paired_losses(losses)
            return
        if event_id in self.expired:
            self._count(LabelOutcome.LATE, out)
            return
        if event_id in self.early:
            self._count(LabelOutcome.DUPLICATE, out)
            return
        self.early[event_id] = (label.label, label.timestamp_ms, offset)
        if len(self.early) > self.settings.max_pending:
            self.early.popitem(last=False)
            self._count(LabelOutcome.UNMATCHED, out)

    def close(self, out: OutcomeOutput) -> None:
        """Expire what the join window has passed and close the window if it is due."""
        self._expire(out)
        s = self.settings
        due = s.window_events and self._window_records >= s.window_events
        if not due and s.window_seconds and self._window_start is not None and self._watermark is not None:
            due = self._watermark - self._window_start >= s.window_seconds * 1000.0
        if due:
            self._close_window(out)

    # ------------------------------------------------------------- internals
    def _touch(self, topic: str, offset: int, time_ms: int | None) -> None:
        self._window_records += 1
        self._first_offset.setdefault(topic, offset)
        self._last = (topic, offset, time_ms)
        if time_ms is not None:
            if self._watermark is None or time_ms > self._watermark:
                self._watermark = time_ms
            if self._window_start is None:
                self._window_start = time_ms

    def _count(self, outcome: str, out: OutcomeOutput, n: int = 1) -> None:
        self.counts[outcome] += n
        self.window_counts[outcome] += n
        key = (self.model, outcome)
        out.labels[key] = out.labels.get(key, 0) + n

    def _remember(self, event_id: str, label: object, time_ms: int | None) -> None:
        self.done[event_id] = (label, time_ms)
        if len(self.done) > self.settings.max_pending:
            self.done.popitem(last=False)

    def _expire(self, out: OutcomeOutput) -> None:
        if self._watermark is None:
            return
        horizon = self._watermark - self.settings.join_window_ms
        while self.pending:
            event_id, entry = next(iter(self.pending.items()))
            first = _first_time(entry)
            if first is not None and first >= horizon:
                break  # (an inference without event time cannot wait for anything: it goes when reached)
            self.pending.popitem(last=False)
            self.expired[event_id] = None
            if len(self.expired) > self.settings.max_pending:
                self.expired.popitem(last=False)
            self._count(LabelOutcome.UNLABELED, out)
        while self.early:
            event_id, (_, time_ms, _) = next(iter(self.early.items()))
            if time_ms is None or time_ms >= horizon:
                break
            self.early.popitem(last=False)
            self._count(LabelOutcome.UNMATCHED, out)

    def _version(self, version: str) -> _Version:
        v = self.versions.get(version)
        if v is None:
            v = self.versions[version] = _Version(self._delta, self.settings.block)
        return v

    def _prediction(self, v: _Version, version: str, time_ms: int | None, outputs: dict[str, object] | None,
                    offset: int, out: OutcomeOutput) -> _Prediction | None:
        """Check the output rules and keep what scoring needs."""
        r = self.rules
        if not outputs:
            return None  # features only: nothing to score or check
        raw = outputs.get(r.prediction)
        if raw is None:
            if len(outputs) == 1 and r.prediction == _DEFAULT_RULES.prediction:
                raw = next(iter(outputs.values()))  # one named output and no other said: that is the prediction
            elif self.configured:  # the configured output is missing: a rule broken
                self._violation(v, Rule.MISSING_OUTPUT, out)
            if raw is None:
                return None
        for name in r.probability_outputs:
            p = outputs.get(name)
            if isinstance(p, (int, float)) and not isinstance(p, bool) and not 0.0 <= p <= 1.0:
                self._violation(v, Rule.NOT_A_PROBABILITY, out)
        value: float | None = None
        kind = type(raw)
        if kind is float or kind is int:
            value = _float(raw)
            if value - value != 0.0:  # NaN or infinite (or an integer beyond a double)
                self._violation(v, Rule.NOT_FINITE, out)
                return None
            if r.valid_range is not None and not r.valid_range[0] <= value <= r.valid_range[1]:
                self._violation(v, Rule.OUT_OF_RANGE, out)
        elif kind is str:
            raw = class_text(raw, self.settings.max_text_chars)  # type: ignore[arg-type]
        elif kind is not bool:
            return None  # an array or an object: not a prediction (the monitor reports it as invalid_value)
        if r.allowed_classes is not None and label_text(raw) not in r.allowed_classes:
            self._violation(v, Rule.UNKNOWN_CLASS, out)
        score = None
        if r.score is not None:
            score_raw = outputs.get(r.score)
            if type(score_raw) in (int, float) and _float(score_raw) - _float(score_raw) == 0.0:
                score = float(score_raw)
        elif r.task != REGRESSION and v.task != REGRESSION and value is not None and 0.0 <= value <= 1.0:
            score = value  # a probability as the prediction: a binary classifier's score (auto)
        if score is not None:
            if not 0.0 <= score <= 1.0:
                self._violation(v, Rule.NOT_A_PROBABILITY, out)
                score = None
            elif v.task != REGRESSION:
                # expected correctness of a calibrated score at the decision threshold
                v.est_sum += score if score >= r.decision_threshold else 1.0 - score
                v.est_n += 1
        return _new(_Prediction, (version, time_ms, value, raw, score, offset))

    def _violation(self, v: _Version, rule: str, out: OutcomeOutput) -> None:
        v.violations[rule] = v.violations.get(rule, 0) + 1
        key = (self.model, rule)
        out.violations[key] = out.violations.get(key, 0) + 1

    def _decide_task(self, v: _Version, pred: _Prediction, label: object) -> None:
        r = self.rules
        task = r.task
        if task == "auto":
            if isinstance(label, str) or pred.value is None:
                task = CLASSIFICATION
            elif pred.score is not None and label in (0.0, 1.0):
                task = CLASSIFICATION  # a score in [0, 1] against 0/1 labels: binary classifier
            else:
                task = REGRESSION
        v.task = task
        if task == CLASSIFICATION:
            # Binary by score when there is one: the positive class is configured, or 1 for 0/1 labels.
            v.positive = r.positive_class or ("1" if pred.score is not None else None)
            v.total, v.window = ClassificationStats(), ClassificationStats()
        else:
            v.total, v.window = RegressionStats(), RegressionStats()

    def _binary(self, v: _Version, pred: _Prediction) -> bool:
        return pred.score is not None and v.positive is not None

    def _classes(self, v: _Version, pred: _Prediction, label: object) -> tuple[str, str]:
        """(predicted, actual) class names; a scored binary classifier's are ``positive`` / ``not positive``."""
        actual = label_text(label)
        if self._binary(v, pred):
            positive = str(v.positive)
            negative = f"not {positive}"
            return (positive if pred.score >= self.rules.decision_threshold else negative,  # type: ignore[operator]
                    positive if actual == positive else negative)
        return label_text(pred.raw), actual

    def _loss(self, v: _Version, pred: _Prediction, label: object) -> float | None:
        if v.task == CLASSIFICATION:
            predicted, actual = self._classes(v, pred, label)
            return 0.0 if predicted == actual else 1.0
        if pred.value is None or not isinstance(label, float):
            return None
        return abs(pred.value - label)

    def _score(self, pred: _Prediction, label: object, label_time: int | None, out: OutcomeOutput) -> float | None:
        v = self._version(pred.version)
        v.joined += 1
        if v.task is None:
            if (self.rules.task == "auto" and label in (0.0, 1.0) and pred.value is not None
                    and not 0.0 <= pred.value <= 1.0):
                return None  # 0/1 labels but an out-of-range score: let a valid record decide the task
            self._decide_task(v, pred, label)
        loss = self._loss(v, pred, label)
        if loss is None:
            return None
        v.labeled += 1
        if v.task == CLASSIFICATION:
            predicted, actual = self._classes(v, pred, label)
            score = pred.score if self._binary(v, pred) else None
            for stats in (v.window, v.total):
                stats.add(predicted, actual, positive=v.positive, score=score)  # type: ignore[union-attr]
            if pred.score is not None and max(pred.score, 1.0 - pred.score) >= self.rules.confidence_threshold:
                v.confident += 1
                v.confident_wrong += loss > 0
        else:
            for stats in (v.window, v.total):
                stats.add(pred.value, label)  # type: ignore[union-attr, arg-type]
        rose = v.drift.add(loss, self.settings.label_warmup, binary=v.task == CLASSIFICATION)
        if rose is not None:
            before, after = rose
            metric = "error_rate" if v.task == CLASSIFICATION else "mae"
            coverage = v.joined / max(v.inferences, 1)
            out.findings.append(self._finding(
                pred.version, Kind.CONCEPT_DRIFT, Rule.CONCEPT_DRIFT,
                Severity.CRITICAL if after >= 2 * before or after - before >= 0.2 else Severity.WARNING,
                after, before,
                f"{'Error rate' if metric == 'error_rate' else 'Mean absolute error'} rose from {before:.3g} to "
                f"{after:.3g} on labeled records (ADWIN, label coverage {coverage:.0%}): either the relation "
                f"between inputs and outcome changed, or the inputs moved to where the model errs more (check "
                f"the data-drift alerts); retrain, or check the labels.",
                metric=metric, before=before, after=after, label_coverage=coverage, labeled=v.labeled,
            ))
        return loss

    def _paired_losses(self, losses: dict[str, float | None]) -> None:
        """Challenger minus champion loss on one labeled event both scored."""
        versions = [v for v, loss in losses.items() if loss is not None]
        for i, x in enumerate(versions):
            for y in versions[i + 1:]:
                champion, challenger = self.rules_pair(x, y)
                pair = self._pair(champion, challenger)
                if pair is None:
                    continue
                pair.loss_diff.add(losses[challenger] - losses[champion])  # type: ignore[operator]

    def _compare(self, a: _Prediction, b: _Prediction) -> None:
        champion, challenger = self.rules_pair(a.version, b.version)
        first, second = (a, b) if a.version == champion else (b, a)
        pair = self._pair(champion, challenger)
        if pair is None:
            return
        pair.pairs += 1
        if self._classed(first) and self._classed(second):
            pair.classed += 1
            pair.disagree += self._class_for(first) != self._class_for(second)
        if first.value is not None and second.value is not None:
            pair.diff.add(second.value - first.value)
            pair.a_values.add(first.value)
            if len(pair.a_sample) < _Pair.SAMPLE:
                pair.a_sample.append(first.value)
                pair.b_sample.append(second.value)

    def _pair(self, champion: str, challenger: str) -> _Pair | None:
        pair = self.pairs.get((champion, challenger))
        if pair is None and len(self.pairs) < _Pair.MAX_PAIRS:
            pair = self.pairs[(champion, challenger)] = _Pair()
        return pair

    def _classed(self, pred: _Prediction) -> bool:
        """Whether the prediction names a class: a score of a binary classifier, or a class name."""
        if pred.score is not None and self.versions[pred.version].task != REGRESSION:
            return True
        return pred.value is None or self.rules.task == CLASSIFICATION or self.versions[pred.version].task == CLASSIFICATION

    def _class_for(self, pred: _Prediction) -> str:
        v = self.versions[pred.version]
        if pred.score is not None and v.task != REGRESSION:
            positive = v.positive or self.rules.positive_class or "1"
            return positive if pred.score >= self.rules.decision_threshold else f"not {positive}"
        return label_text(pred.raw)

    def rules_pair(self, x: str, y: str) -> tuple[str, str]:
        """(champion, challenger): the first version seen is the champion."""
        order = list(self.versions)
        return (x, y) if order.index(x) <= order.index(y) else (y, x)

    # ---------------------------------------------------------------- windows
    def _span(self) -> WindowSpan:
        topic, offset, time_ms = self._last
        first = self._first_offset.get(topic, offset)
        return WindowSpan(topic, self.partition, first, offset, self._window_start, time_ms)

    def _finding(self, version: str, kind: str, detector: str, severity: str, statistic: float, threshold: float,
                 summary: str, **details: object) -> Finding:
        return Finding(model=self.model, model_version=version, feature=self.rules.prediction if version else OUTPUTS,
                       kind=kind, detector=detector, severity=severity, statistic=float(statistic),
                       threshold=float(threshold), summary=f"[{self.model} {version}] {summary}", window=self._span(),
                       event_time_ms=self._last[2], details=dict(details), source=OUTPUTS)

    def _close_window(self, out: OutcomeOutput) -> None:
        s, r = self.settings, self.rules
        span = self._span().to_dict()
        for name, v in self.versions.items():
            summary: dict[str, object] = {
                "type": "performance_summary", "model": self.model, "model_version": name, "window": span,
                "task": v.task, "inferences": v.window_inferences,
                "labels": dict(self.window_counts),
                "label_coverage": (v.joined / v.inferences) if v.inferences else None,
                "window_performance": v.window.to_dict() if v.window is not None else None,
                "cumulative_performance": v.total.to_dict() if v.total is not None else None,
                "estimated_accuracy": (v.est_sum / v.est_n) if v.est_n and v.task != REGRESSION else None,
                "confident_predictions": v.confident, "confident_errors": v.confident_wrong,
                "output_violations": dict(v.violations),
            }
            out.summaries.append(summary)
            violations = sum(v.violations.values())
            if v.window_inferences >= s.min_window_values and violations > r.max_violation_rate * v.window_inferences:
                rate = violations / v.window_inferences
                rules = ", ".join(f"{k} {n}" for k, n in sorted(v.violations.items()))
                out.findings.append(self._finding(
                    name, Kind.OUTPUT_QUALITY, Rule.OUTPUT_RULES, Severity.CRITICAL if rate >= 0.01 else Severity.WARNING,
                    rate, r.max_violation_rate,
                    f"{violations} of {v.window_inferences} outputs broke the output rules ({rules}); "
                    f"check the model's post-processing and the serving code.",
                    violations=dict(v.violations), inferences=v.window_inferences))
            if v.confident >= s.min_window_values:
                rate = v.confident_wrong / v.confident
                if wilson_lower(v.confident_wrong, v.confident, s.window_alpha) > r.max_confident_error_rate:
                    out.findings.append(self._finding(
                        name, Kind.OUTPUT_QUALITY, Rule.CONFIDENT_ERRORS, Severity.WARNING, rate, r.max_confident_error_rate,
                        f"{v.confident_wrong} of {v.confident} predictions made with confidence ≥ "
                        f"{r.confidence_threshold:g} were wrong ({rate:.1%} > {r.max_confident_error_rate:.1%}); "
                        f"the model is over-confident: recalibrate or retrain.",
                        confident=v.confident, confident_wrong=v.confident_wrong))
            v.reset_window()
        for (a, b), pair in self.pairs.items():
            comparison = self._comparison(a, b, pair, span, out)
            out.summaries.append(comparison)
        self.pairs = {}
        self.window_counts = {o: 0 for o in LabelOutcome.ALL}
        self._window_records = 0
        self._window_start = None
        self._first_offset = {}

    def _comparison(self, a: str, b: str, pair: _Pair, span: dict[str, object], out: OutcomeOutput) -> dict[str, object]:
        s, r = self.settings, self.rules
        rate = pair.disagree / pair.classed if pair.classed else None
        sd = math.sqrt(pair.a_values.m2 / (pair.a_values.n - 1)) if pair.a_values.n > 1 else None
        mean_sd = (pair.diff.mean / sd) if sd else None
        interval = pair.diff.interval(1.0 - 2 * s.window_alpha)
        va, vb = self.versions.get(a), self.versions.get(b)
        perf_a = va.total.to_dict() if va is not None and va.total is not None else None
        perf_b = vb.total.to_dict() if vb is not None and vb.total is not None else None
        summary: dict[str, object] = {
            "type": "version_comparison", "model": self.model, "champion": a, "challenger": b, "window": span,
            "pairs": pair.pairs, "disagreement_rate": rate, "mean_difference": pair.diff.mean if pair.diff.n else None,
            "mean_difference_sd": mean_sd,
            "ks": _ks(pair.a_sample, pair.b_sample),
            "mean_difference_interval": list(interval) if interval else None,
            "champion_performance": perf_a, "challenger_performance": perf_b,
        }
        key = "accuracy" if va is not None and va.task == CLASSIFICATION else "mae"
        if perf_a and perf_b and perf_a.get(key) is not None and perf_b.get(key) is not None:
            na, nb = int(perf_a["labeled"] or 0), int(perf_b["labeled"] or 0)
            pa, pb = float(perf_a[key]), float(perf_b[key])  # type: ignore[arg-type]
            if key == "accuracy" and na and nb:
                half = 1.96 * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
            else:
                half = None
            summary["performance_difference"] = {"metric": key, "challenger_minus_champion": pb - pa,
                                                 "interval_95": [pb - pa - half, pb - pa + half] if half is not None else None}
        if pair.loss_diff.n:
            loss_interval = pair.loss_diff.interval(0.95)
            summary["paired_loss_difference"] = {
                "loss": "error_rate" if va is not None and va.task == CLASSIFICATION else "absolute_error",
                "events": pair.loss_diff.n, "challenger_minus_champion": pair.loss_diff.mean,
                "interval_95": list(loss_interval) if loss_interval else None}
        if pair.pairs >= s.min_window_values:
            if pair.classed >= s.min_window_values and wilson_lower(pair.disagree, pair.classed, s.window_alpha) > r.max_disagreement:
                out.findings.append(self._finding(
                    b, Kind.VERSION_DIVERGENCE, Rule.DISAGREEMENT, Severity.WARNING, rate or 0.0, r.max_disagreement,
                    f"Challenger {b} disagrees with champion {a} on {rate:.1%} of {pair.pairs} shared events "
                    f"(> {r.max_disagreement:.1%}); review before promoting it.",
                    champion=a, challenger=b, pairs=pair.pairs, disagreement_rate=rate))
            elif (mean_sd is not None and interval is not None and sd
                  and min(abs(interval[0]), abs(interval[1])) / sd > r.max_mean_difference_sd
                  and interval[0] * interval[1] > 0):
                out.findings.append(self._finding(
                    b, Kind.VERSION_DIVERGENCE, Rule.MEAN_DIFFERENCE, Severity.WARNING, mean_sd, r.max_mean_difference_sd,
                    f"Challenger {b} predicts {pair.diff.mean:+.3g} ({mean_sd:+.2f} champion sd) from champion {a} "
                    f"on {pair.pairs} shared events; review before promoting it.",
                    champion=a, challenger=b, pairs=pair.pairs, mean_difference=pair.diff.mean))
        return summary
