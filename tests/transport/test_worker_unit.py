from driftline.config import load_settings
from driftline.transport.worker import Worker, pipeline_settings


def test_not_ready_before_assignment():
    worker = Worker(load_settings(metrics_port=0))
    ok, reason = worker.ready()
    assert not ok and "no partitions" in reason


def test_pipeline_settings_follow_the_configuration():
    s = load_settings(warmup=300, window_events=700, detector_block=8, false_alarm_rate=1e-6, max_models=3)
    p = pipeline_settings(s)
    assert (p.monitor.warmup, p.monitor.window_events, p.monitor.detector.block, p.max_models) == (300, 700, 8, 3)
    stricter = pipeline_settings(load_settings(detector_block=8, false_alarm_rate=1e-8))
    assert stricter.monitor.detector.ph_threshold > p.monitor.detector.ph_threshold
