"""What webhooks receive: the Slack payload, the generic payload, headers, and what is not an alert."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.notify.messages import (COLOURS, alert_key, decode_alert, detected_at_ms, request_body,
                                       request_headers, slack_message)

FIRING = {
    "schema_version": 1, "alert_id": "be7e405c0c0d26ed982babd5623d6703", "status": "firing", "model": "fraud",
    "model_version": "v3", "feature": "amount", "kind": "data_drift", "detector": "page_hinkley",
    "severity": "critical", "statistic": 6.703053328906833, "threshold": 6.546475877691666,
    "summary": "[fraud v3] Mean of feature 'amount' moved up by about 0.25 reference sd (Page-Hinkley 6.70 > 6.55)",
    "reference": "warmup",
    "window": {"topic": "ml.inferences", "partition": 2, "first_offset": 107200, "last_offset": 108031,
               "first_event_time": "2025-11-26T10:06:00.000Z", "last_event_time": "2025-11-26T10:06:41.550Z"},
    "event_time": "2025-11-26T10:06:41.550Z", "detected_at": "2025-11-26T10:06:42.104Z",
    "details": {"mean_shift_sd": 0.2471},
}
RESOLVED = {**FIRING, "alert_id": "e7b735181f458d8b513ea86e95deffa3", "status": "resolved",
            "summary": "Resolved: no further findings for fraud/v3/amount/data_drift in 600 s of event time.",
            "firing_alert_id": FIRING["alert_id"], "detected_at": "2025-11-26T10:20:03.377Z"}


def test_slack_message_has_text_and_one_attachment_with_the_details():
    msg = slack_message(FIRING)
    assert set(msg) == {"text", "attachments"}
    assert "FIRING" in msg["text"] and "critical" in msg["text"] and "fraud/v3" in msg["text"] and "amount" in msg["text"]
    (att,) = msg["attachments"]
    assert att["color"] == COLOURS[("firing", "critical")]
    assert att["title"].startswith("[fraud v3] Mean of feature 'amount' moved up")
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["Check"] == "data_drift/page_hinkley"
    assert fields["Statistic"] == "6.703 (threshold 6.546)"
    assert fields["Records"] == "ml.inferences[2] offsets 107200–108031"
    assert FIRING["alert_id"] in att["footer"] and "fraud/v3/amount/data_drift" in att["footer"]
    assert att["ts"] == 1764151602
    assert all(isinstance(f["short"], bool) for f in att["fields"])


def test_colour_follows_status_and_severity():
    colours = {slack_message(FIRING)["attachments"][0]["color"],
               slack_message({**FIRING, "severity": "warning"})["attachments"][0]["color"],
               slack_message(RESOLVED)["attachments"][0]["color"]}
    assert colours == {COLOURS[("firing", "critical")], COLOURS[("firing", "warning")], COLOURS[("resolved", None)]}
    resolved = slack_message(RESOLVED)
    assert "RESOLVED" in resolved["text"] and "critical" not in resolved["text"]


def test_slack_control_characters_are_escaped():
    msg = slack_message({**FIRING, "feature": "<a&b>", "summary": "x > y & <!channel>"})
    assert "<!channel>" not in orjson.dumps(msg).decode()
    assert "&lt;a&amp;b&gt;" in msg["text"]
    assert msg["attachments"][0]["title"] == "x &gt; y &amp; &lt;!channel&gt;"


def test_generic_body_is_the_alert_record_as_is():
    assert orjson.loads(request_body("webhook", RESOLVED)) == RESOLVED
    assert orjson.loads(request_body("slack", RESOLVED)) == slack_message(RESOLVED)


def test_headers_carry_the_ids_receivers_dedup_on_and_stay_valid_headers():
    h = request_headers(FIRING)
    assert h["Content-Type"] == "application/json"
    assert h["Idempotency-Key"] == h["X-Driftline-Alert-Id"] == FIRING["alert_id"]
    assert h["X-Driftline-Alert-Key"] == "fraud/v3/amount/data_drift" and h["X-Driftline-Alert-Status"] == "firing"
    odd = request_headers({**FIRING, "feature": "a\r\nX-Evil: 1 é"})
    assert all(" " <= c <= "~" for v in odd.values() for c in v)


def test_decode_alert_accepts_alerts_and_names_what_else_it_got():
    assert decode_alert(orjson.dumps(FIRING)).alert == FIRING
    problems = {value: decode_alert(value).problem for value in
                (None, b"", b"{not json", b"[1, 2]", b'{"status": "firing", "model": "m"}',
                 b'{"status": "pending", "alert_id": "a", "model": "m"}', b'{"status": "resolved", "alert_id": "a"}')}
    assert all(problems.values()), problems
    assert problems[b"{not json"] == "not JSON" and problems[b"[1, 2]"] == "not a JSON object"
    assert "pending" in problems[b'{"status": "pending", "alert_id": "a", "model": "m"}']


def test_alert_key_and_detected_at():
    assert alert_key(FIRING) == "fraud/v3/amount/data_drift"
    assert detected_at_ms(FIRING) == 1764151602104.0
    assert detected_at_ms({"detected_at": "yesterday"}) is None
    assert detected_at_ms({"detected_at": "2025-11-26T10:06:42"}) is None  # no zone: not trusted
    assert detected_at_ms({}) is None


_json = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-2**60, 2**60) | st.text(),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(FIRING) + ["x"]), _json), st.sampled_from(["firing", "resolved"]))
def test_any_decodable_alert_formats_without_error(fields, status):
    record = {**fields, "status": status, "alert_id": "a" * 32, "model": str(fields.get("model", "m"))}
    decoded = decode_alert(orjson.dumps(record))
    assert decoded.alert is not None
    body = orjson.loads(request_body("slack", decoded.alert))
    assert body["text"] and body["attachments"][0]["color"].startswith("#")
    request_headers(decoded.alert)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(list(FIRING) + ["detectors", "opened_event_time", "reminder"]), _json),
                min_size=1, max_size=4),
       st.sampled_from([0.0, 1.0]))
def test_incident_messages_of_any_records_format_without_error(records, wait):
    from driftline.notify.incidents import IncidentBook
    from driftline.notify.messages import incident_request_body, incident_request_headers

    book = IncidentBook(group_wait_seconds=wait, cooldown_seconds=0)
    messages = []
    for i, fields in enumerate(records):
        record = {**fields, "alert_id": f"a{i}", "model": str(fields.get("model", "m")), "incident_id": "\x1b[2J\u2028i",
                  "status": "resolved" if i == len(records) - 1 and i else "firing"}
        decoded = decode_alert(orjson.dumps(record)).alert
        messages += book.add(decoded, alert_key(decoded), now=0.0, at_ms=0.0).messages
    messages += book.due(10.0)
    assert messages
    for m in messages:
        slack = orjson.loads(incident_request_body("slack", m.document))
        dumped = orjson.dumps(slack).decode()
        assert slack["text"] and "\\u001b" not in dumped and "\u2028" not in dumped  # control characters shown escaped
        assert orjson.loads(incident_request_body("webhook", m.document))["message_id"] == m.message_id
        headers = incident_request_headers(m.document)
        assert all(" " <= c <= "~" for v in headers.values() for c in v) and headers["Idempotency-Key"] == m.message_id


def test_an_incident_resolution_says_how_its_features_resolved():
    from driftline.notify.messages import slack_incident_message

    doc = {"stage": "resolved", "status": "resolved", "model": "fraud", "model_version": "v3", "incident_id": "i",
           "message_id": "m", "features": ["a", "b", "c"], "kinds": ["data_drift"], "detectors": ["cusum"],
           "alerts": [{"resolution": "back_to_reference"}, {"resolution": "back_to_reference"},
                      {"resolution": "reference_changed"}]}
    msg = slack_incident_message(doc)
    fields = {f["title"]: f["value"] for f in msg["attachments"][0]["fields"]}
    assert fields["Resolution"] == "back_to_reference (2), reference_changed (1)"
    assert msg["text"].startswith(":white_check_mark: *RESOLVED* fraud/v3 · 3 features back: a, b, c")
    assert msg["attachments"][0]["color"] == COLOURS[("resolved", None)]
