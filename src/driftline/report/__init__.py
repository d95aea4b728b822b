"""The HTML drift report: window summaries, alerts and reference profiles in, one self-contained page out.

``data`` assembles what the page shows (:func:`assemble`), ``svg`` draws the
charts and ``html`` writes the page (:func:`render`); none of them does I/O.
``driftline report`` (:mod:`driftline.cli.report`) feeds them from a replayed
file, from summary / alert files or from the Kafka topics.
"""

from driftline.report.data import ReportData, WindowTests, assemble
from driftline.report.html import render

__all__ = ["assemble", "render", "ReportData", "WindowTests"]
