"""A tiny model server that logs every prediction with driftline.client (stdlib + driftline only).

    python examples/model_server.py --port 8000                 # serve POST /predict
    python examples/model_server.py --traffic 50 --drift-after 180 --port 8000

The model is a credit-risk scorer (``credit-risk`` version ``v2``): features
``income``, ``age``, ``debt_ratio``, ``open_accounts`` (numbers) and
``channel`` (``web``, ``mobile``, ``branch``, ``partner``), one output
``default_probability``.

    curl -s localhost:8000/predict -d '{"income": 42000, "age": 37, "debt_ratio": 0.3, "open_accounts": 2, "channel": "web"}'
    {"model":"credit-risk","model_version":"v2","event_id":"…","prediction":{"default_probability":0.31}}

``--traffic RATE`` makes the server send itself RATE requests per second over
HTTP, like clients would; ``--drift-after SECONDS`` then shifts the mean of
``income`` down by about one standard deviation and moves 30 points of the
``channel`` mix from ``web`` to ``mobile``, which driftline should report.  A
share of the generated predictions (``--labels-fraction``) also gets its
ground-truth label on the labels topic.  ``GET /healthz`` answers ``ok``,
``GET /stats`` the logger's counters.

Kafka: ``DRIFTLINE_BOOTSTRAP_SERVERS`` (default ``localhost:9092``), the first
topic of ``DRIFTLINE_INPUT_TOPICS`` (default ``ml.inferences``) and
``DRIFTLINE_LABELS_TOPIC`` (default ``ml.labels``), the same variables the
worker reads.  SIGTERM / SIGINT stop the server and flush the logger.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from driftline.client import PredictionLogger

log = logging.getLogger("model_server")

MODEL = "credit-risk"
MODEL_VERSION = "v2"
CHANNELS = ("web", "mobile", "branch", "partner")
CHANNEL_MIX = (0.5, 0.3, 0.15, 0.05)
CHANNEL_MIX_DRIFTED = (0.2, 0.6, 0.15, 0.05)
NUMERIC = ("income", "age", "debt_ratio", "open_accounts")
DEFAULTS = {"income": 38000.0, "age": 45.0, "debt_ratio": 0.3, "open_accounts": 3.0}
INCOME_SHIFT = 0.41 * math.exp(10.5 + 0.08)  # about one standard deviation of the lognormal(10.5, 0.4)


# -- the model ------------------------------------------------------------------------------------

class BadRequest(ValueError):
    """The request body is not a features object the model can score."""


def parse_features(body: bytes) -> dict[str, object]:
    """The features of a ``POST /predict`` body: a JSON object; missing numbers are allowed (null)."""
    try:
        doc = json.loads(body or b"null")
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object of features, e.g. {\"income\": 42000, \"channel\": \"web\"}")
    features: dict[str, object] = {}
    for name in NUMERIC:
        value = doc.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BadRequest(f"feature {name!r} must be a number or null, got {value!r:.40}")
        features[name] = value
    channel = doc.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise BadRequest(f"feature 'channel' must be a string or null, got {channel!r:.40}")
    features["channel"] = channel
    return features


def default_probability(features: dict[str, object]) -> float:
    """The model: a fixed logistic score; missing values take a typical value."""
    x = {n: float(features[n]) if features.get(n) is not None else DEFAULTS[n] for n in NUMERIC}  # type: ignore[arg-type]
    z = -2.0 + 3.0 * x["debt_ratio"] - x["income"] / 60000.0 + 0.01 * (x["age"] - 40) + 0.05 * x["open_accounts"]
    z += 0.2 if features.get("channel") == "partner" else 0.0
    return round(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))), 6)


# -- the HTTP server ------------------------------------------------------------------------------

class PredictHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the traffic generator reuses its connection
    disable_nagle_algorithm = True  # headers and body are two writes: don't wait for a delayed ACK between them
    server: "ModelServer"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") != "/predict":
            return self._reply(404, {"error": f"no route POST {self.path}; use POST /predict"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
            features = parse_features(self.rfile.read(length))
        except (BadRequest, ValueError) as exc:
            return self._reply(400, {"error": str(exc)})
        prediction = {"default_probability": default_probability(features)}
        # One call per prediction: never blocks, never raises (losses are counted in logger.stats()).
        event_id = self.server.prediction_logger.log(features, prediction)
        self._reply(200, {"model": MODEL, "model_version": MODEL_VERSION, "event_id": event_id, "prediction": prediction})

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/healthz":
            return self._reply(200, {"status": "ok"})
        if self.path == "/stats":
            return self._reply(200, self.server.prediction_logger.stats()._asdict())
        self._reply(404, {"error": f"no route GET {self.path}; try POST /predict, GET /healthz, GET /stats"})

    def _reply(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - one line per request is too much
        pass


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], prediction_logger: PredictionLogger) -> None:
        super().__init__(address, PredictHandler)
        self.prediction_logger = prediction_logger


# -- the traffic generator ------------------------------------------------------------------------

def sample_features(rng: random.Random, drifted: bool) -> dict[str, object]:
    income = rng.lognormvariate(10.5, 0.4) - (INCOME_SHIFT if drifted else 0.0)
    return {
        "income": round(income, 2),
        "age": float(rng.randint(18, 79)),
        "debt_ratio": rng.betavariate(2, 5),
        "open_accounts": float(min(20, int(rng.expovariate(1 / 3)))),
        "channel": rng.choices(CHANNELS, weights=CHANNEL_MIX_DRIFTED if drifted else CHANNEL_MIX)[0],
    }


def generate_traffic(port: int, rate: float, drift_after: float | None, labels_fraction: float, max_events: int | None,
                     seed: int, prediction_logger: PredictionLogger, stop: threading.Event) -> None:
    """POST /predict to our own server ``rate`` times a second; drift after ``drift_after`` seconds."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    start = time.monotonic()
    drifted = False
    sent = 0
    next_status = start + 10
    while not stop.is_set() and (max_events is None or sent < max_events):
        now = time.monotonic()
        if not drifted and drift_after is not None and now - start >= drift_after:
            drifted = True
            log.warning("drift injected at epoch_ms=%d: income mean -%.0f, channel mix %s -> %s",
                        int(time.time() * 1000), INCOME_SHIFT, CHANNEL_MIX, CHANNEL_MIX_DRIFTED)
        due = start + sent / rate
        if due > now:
            stop.wait(due - now)
            continue
        features = sample_features(rng, drifted)
        try:
            conn.request("POST", "/predict", body=json.dumps(features), headers={"Content-Type": "application/json"})
            response = json.loads(conn.getresponse().read())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.warning("traffic request failed (%s); reconnecting", exc)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            stop.wait(0.5)
            continue
        sent += 1
        event_id = response.get("event_id")
        if event_id and rng.random() < labels_fraction:
            # The outcome a little later, as the business would learn it: drawn from the model's own score.
            p = response["prediction"]["default_probability"]
            prediction_logger.log_label(event_id, 1 if rng.random() < p else 0)
        if now >= next_status:
            next_status = now + 10
            log.info("traffic: %d requests%s; logger %s", sent, " (drifted)" if drifted else "", prediction_logger.stats())
    conn.close()
    log.info("traffic: done after %d requests", sent)


# -- main -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A tiny model server that logs its predictions to Kafka with driftline.client.")
    p.add_argument("--host", default="0.0.0.0", help="interface to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--traffic", type=float, default=0.0, metavar="RATE",
                   help="send ourselves RATE requests per second (default 0: only serve)")
    p.add_argument("--drift-after", type=float, default=None, metavar="SECONDS",
                   help="with --traffic: inject a drift (income mean and channel mix) after SECONDS")
    p.add_argument("--labels-fraction", type=float, default=0.2, metavar="FRACTION",
                   help="with --traffic: share of predictions that get a ground-truth label (default 0.2)")
    p.add_argument("--max-events", type=int, default=None, metavar="N", help="with --traffic: stop after N requests")
    p.add_argument("--seed", type=int, default=7, help="traffic random seed (default 7)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.traffic < 0 or (args.drift_after is not None and args.drift_after < 0) or not 0 <= args.labels_fraction <= 1:
        print("invalid arguments: --traffic and --drift-after must be >= 0, --labels-fraction within [0, 1]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bootstrap = os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS") or "localhost:9092"
    topic = (os.environ.get("DRIFTLINE_INPUT_TOPICS") or "ml.inferences").split(",")[0].strip()
    labels_topic = os.environ.get("DRIFTLINE_LABELS_TOPIC") or "ml.labels"

    prediction_logger = PredictionLogger(bootstrap, model=MODEL, model_version=MODEL_VERSION, topic=topic,
                                         labels_topic=labels_topic, report_interval_seconds=10)
    server = ModelServer((args.host, args.port), prediction_logger)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("listening on http://%s:%d (POST /predict); logging to %s topic %s", args.host, server.server_port,
             bootstrap, topic)
    if args.traffic > 0:
        generate_traffic(server.server_port, args.traffic, args.drift_after, args.labels_fraction, args.max_events,
                         args.seed, prediction_logger, stop)
    else:
        stop.wait()
    server.shutdown()
    server.server_close()
    remaining = prediction_logger.close(10)
    log.info("stopped; logger %s, %d undelivered", prediction_logger.stats(), remaining)
    return 0


if __name__ == "__main__":
    sys.exit(main())
