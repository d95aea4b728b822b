"""docs/notify.md must follow the code: settings, metrics and the Slack example."""

import re
from pathlib import Path

import orjson
import pytest

from driftline.notify.messages import slack_message
from driftline.notify.settings import FLAGS, NOTIFY_ENV_PREFIX, NotifySettings
from driftline.observability.notify_metrics import NotifyMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _json_blocks(path: Path) -> list[str]:
    return re.findall(r"```json\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("name", list(NotifySettings.model_fields))
def test_every_notify_setting_is_documented(name):
    text = (DOCS / "notify.md").read_text(encoding="utf-8")
    env = f"{NOTIFY_ENV_PREFIX}{name.upper()}"
    short_env = f"..._{name.upper()}"  # the filter row abbreviates its variables
    missing = [t for t in (f"`{name}`", FLAGS[name]) if t not in text]
    if env not in text and short_env not in text:
        missing.append(env)
    assert not missing, f"docs/notify.md does not mention {missing} of notify setting {name!r}: add it to the settings table"


def test_every_notify_metric_is_documented():
    text = (DOCS / "notify.md").read_text(encoding="utf-8")
    names = [f.name + ("_total" if f.type == "counter" else "") for f in NotifyMetrics(process_metrics=False).registry.collect()]
    assert len(names) == 6
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"docs/notify.md does not list the metric(s) {missing}; add them to its metrics table"


def test_the_slack_example_is_what_the_code_posts_for_the_outputs_example():
    firing = next(orjson.loads(b) for b in _json_blocks(DOCS / "outputs.md") if '"status": "firing"' in b)
    example = orjson.loads(_json_blocks(DOCS / "notify.md")[1])
    assert example == slack_message(firing), "update the Slack example in docs/notify.md from slack_message()"


EXAMPLE_INCIDENT = "3a7d0e1f9b2c4d5e6f708192a3b4c5d6"


def incident_opening(firing: dict) -> dict:
    """The Slack message of the opening of an incident: the outputs.md firing example and a second feature
    of the same break (the incident_id of the example, or a fixed one while the example has none)."""
    from driftline.notify.incidents import IncidentBook
    from driftline.notify.messages import alert_key, slack_incident_message

    first = {"incident_id": EXAMPLE_INCIDENT, "detectors": [firing["detector"]], **firing}
    second = {**first, "alert_id": "0c4f2d6a8e1b3c5d7f9a0b2c4d6e8f01", "feature": "merchant_category",
              "severity": "critical", "summary": "[fraud v3] Category mix of feature 'merchant_category' changed."}
    book = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    for record in (first, second):
        book.add(record, alert_key(record), now=0.0, at_ms=0.0)
    [opened] = book.due(5.0)
    return slack_incident_message(opened.document)


def test_the_incident_example_is_what_the_code_posts_for_an_opening():
    firing = next(orjson.loads(b) for b in _json_blocks(DOCS / "outputs.md") if '"status": "firing"' in b)
    example = orjson.loads(_json_blocks(DOCS / "notify.md")[0])
    assert example == incident_opening(firing), "update the incident example in docs/notify.md from incident_opening()"


if __name__ == "__main__":  # print both Slack examples of docs/notify.md, to paste after outputs.md's example changed
    _firing = next(orjson.loads(b) for b in _json_blocks(DOCS / "outputs.md") if '"status": "firing"' in b)
    print(orjson.dumps(incident_opening(_firing), option=orjson.OPT_INDENT_2).decode())
    print(orjson.dumps(slack_message(_firing), option=orjson.OPT_INDENT_2).decode())
