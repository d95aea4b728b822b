# Two commands on a fresh machine (python3 and make):
#   make demo   embedded broker + synthetic model server with a drift + a worker
#   make test   the whole test suite (unit, property and integration tests)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: demo test bench cliffs calibration fwer outcomes checkpoint soak schema clean incidents metrics-scrape

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu install the python3-venv package"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[demo,test]'
	@touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/driftline demo

test: $(VENV)/.installed
	$(PY) -m pytest -q --durations=10

bench: $(VENV)/.installed
	$(PY) benchmarks/throughput.py

cliffs: $(VENV)/.installed
	$(PY) benchmarks/throughput.py --cliffs --records 100000 --rounds 3

calibration: $(VENV)/.installed
	$(PY) benchmarks/calibration.py

fwer: $(VENV)/.installed
	$(PY) benchmarks/fwer.py

incidents: $(VENV)/.installed
	$(PY) benchmarks/incidents.py

outcomes: $(VENV)/.installed
	$(PY) benchmarks/outcomes.py

.PHONY: client-outage
client-outage: $(VENV)/.installed
	$(PY) benchmarks/client_outage.py

checkpoint: $(VENV)/.installed
	$(PY) benchmarks/checkpoint.py

metrics-scrape: $(VENV)/.installed
	$(PY) benchmarks/metrics_scrape.py

soak: $(VENV)/.installed
	$(PY) benchmarks/soak.py

schema: $(VENV)/.installed
	$(VENV)/bin/driftline schema > docs/inference-event.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
