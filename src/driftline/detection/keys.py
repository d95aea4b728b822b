"""Keys of alerts and summaries: ``/``-joined components that can never collide.

Each component (model, model version, feature, detector) is written with
percent-encoding of the few characters that would make two keys ambiguous,
so keys of ordinary names read exactly as the names do
(``fraud/v3/amount/psi``) and distinct (model, version, feature, detector)
always give distinct keys:

* ``%`` and ``/`` (the separator), C0 control characters and DEL as ``%XX``
  (upper-case hex of the byte);
* a ``.`` that starts or ends a component, or follows another ``.``, as
  ``%2E``: a component never contains ``..``, which only the
  ``champion..challenger`` component of version comparisons does;
* a *feature* whose name belongs to the outputs' namespace (``prediction`` or
  ``prediction.<name>``), or is ``performance`` (the last component of
  performance summaries), has its first letter written ``%70``: the feature
  ``prediction.score`` is ``%70rediction.score``, the output is
  ``prediction.score``.

Percent-decoding a component gives back the name.  The same feature
component is the ``feature`` label of the per-feature Prometheus series.

>>> alert_key("fraud", "v3", "features", "amount", "psi")
'fraud/v3/amount/psi'
>>> alert_key("col/a", "v", "features", "x", "psi"), alert_key("col", "a/v", "features", "x", "psi")
('col%2Fa/v/x/psi', 'col/a%2Fv/x/psi')
>>> feature_part("features", "prediction.score"), feature_part("prediction", "prediction.score")
('%70rediction.score', 'prediction.score')
>>> comparison_key("fraud", "v3", "v4"), summary_key("fraud", "a..b", "features", "comparison")
('fraud/v3..v4/comparison', 'fraud/a.%2Eb/comparison')
"""

from __future__ import annotations

import re

from driftline.contract.names import is_utf8

__all__ = ["key_part", "feature_part", "alert_key", "incident_key", "CHECK_KINDS", "summary_key", "performance_key", "comparison_key",
           "OUTPUTS_SOURCE"]

#: The source of model outputs (``driftline.contract.columns.OUTPUTS``).
OUTPUTS_SOURCE = "prediction"

_SPECIAL = re.compile(r"[%/\x00-\x1f\x7f]")
#: Feature names that would read as an output, or as the performance summary's last component.
_RESERVED = re.compile(r"prediction(\..*)?|performance", re.DOTALL)


def key_part(text: str) -> str:
    """One key component (see the module docstring)."""
    if (text and text[0] != "." and text[-1] != "." and ".." not in text and not _SPECIAL.search(text)
            and is_utf8(text)):
        return text
    out = []
    last = len(text) - 1
    prev_dot = True  # a leading dot is encoded
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch == ".":
            out.append("%2E" if prev_dot or i == last else ".")
        elif ch in "%/" or code < 0x20 or code == 0x7F:
            out.append(f"%{code:02X}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate: its surrogatepass bytes
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
        else:
            out.append(ch)
        prev_dot = ch == "."
    return "".join(out)


def feature_part(source: str | None, name: str) -> str:
    """The key component of a feature (any source but outputs) or an output."""
    part = key_part(name)
    if source != OUTPUTS_SOURCE and _RESERVED.fullmatch(name):
        return "%70" + part[1:]
    return part


def alert_key(model: str, model_version: str, source: str | None, feature: str, detector: str) -> str:
    """``model/model_version/feature/detector``, each component encoded."""
    return f"{key_part(model)}/{key_part(model_version)}/{feature_part(source, feature)}/{key_part(detector)}"


#: Kinds whose detectors are separate checks: their incident keys end with the check (one incident per check).
CHECK_KINDS = frozenset(("data_quality", "output_quality"))


def incident_key(model: str, model_version: str, source: str | None, feature: str, kind: str, detector: str) -> str:
    """The key of a feature's incident (and of its alert records): ``model/model_version/feature/kind``,
    plus ``/check`` (the detector) for the kinds in :data:`CHECK_KINDS`.

    >>> incident_key("fraud", "v3", "features", "amount", "data_drift", "psi")
    'fraud/v3/amount/data_drift'
    >>> incident_key("fraud", "v3", "features", "amount", "data_quality", "non_finite")
    'fraud/v3/amount/data_quality/non_finite'
    """
    base = f"{key_part(model)}/{key_part(model_version)}/{feature_part(source, feature)}/{key_part(kind)}"
    return f"{base}/{key_part(detector)}" if kind in CHECK_KINDS else base


def summary_key(model: str, model_version: str, source: str | None, feature: str) -> str:
    """Key of a feature's window summary: ``model/model_version/feature``."""
    return f"{key_part(model)}/{key_part(model_version)}/{feature_part(source, feature)}"


def performance_key(model: str, model_version: str) -> str:
    """Key of a performance summary: ``model/model_version/performance``."""
    return f"{key_part(model)}/{key_part(model_version)}/performance"


def comparison_key(model: str, champion: str, challenger: str) -> str:
    """Key of a version comparison: ``model/champion..challenger/comparison``."""
    return f"{key_part(model)}/{key_part(champion)}..{key_part(challenger)}/comparison"
