# Two commands on a fresh machine: `make demo` runs the main job end to end on the embedded defaults,
# `make test` runs the test suite. Both create .venv when missing and stop every process they start.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# Extras to install: hybrid search is in the default install; `make install EXTRAS=dev,embeddings-torch` adds
# its optional PyTorch backend (CPU build, ~1.5 GB).
EXTRAS ?= dev
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install demo test ui migrate clean bench-quality bench-latency bench-notes bench-floors bench-fidelity bench-echo faults latency bench-triage bench-duplicates \
	bench-vagueness

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/enhancement-pipeline demo $(if $(UI),--ui,)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

ui: $(STAMP)
	$(BIN)/enhancement-pipeline ui

migrate: $(STAMP)
	$(BIN)/enhancement-pipeline migrate

# Retrieval quality on real data (Microsoft articles, Endava tickets from ../shared/data) against BM25.
bench-quality:
	$(MAKE) install EXTRAS=dev,embeddings-torch,bench
	$(BIN)/python benchmarks/retrieval_quality.py

# p50/p95 of the production similar-ticket query at 10k, 100k and 1M tickets.
bench-latency:
	$(MAKE) install EXTRAS=dev,bench
	$(BIN)/python benchmarks/search_latency.py

clean:
	rm -rf .local

# Triage on real labels (Endava tickets from ../shared/data): the similar-ticket vote against TF-IDF + logistic
# regression (scikit-learn), calibration error, coverage at the threshold.
bench-triage: $(STAMP)
	$(BIN)/python benchmarks/triage_quality.py

# Precision and recall of the duplicate floors on two phrasings of one problem against near misses.
bench-duplicates: $(STAMP)
	$(BIN)/python benchmarks/duplicate_quality.py

# Precision and recall of the vague-ticket test on hand-labelled real tickets (needs ../shared/data).
bench-vagueness: $(STAMP)
	$(BIN)/python benchmarks/vagueness_quality.py

bench-notes: $(STAMP)
	$(BIN)/python benchmarks/note_checks.py

# The note's checks on realistic answers of four model families: kept, removed, sections, per answer path.
bench-fidelity: $(STAMP)
	$(BIN)/python benchmarks/note_fidelity.py

# How often the prompt-injection cues fire on ordinary help-desk text (shipped articles, ../shared/data tickets).
bench-echo: $(STAMP)
	$(BIN)/python benchmarks/echo_false_alarms.py

# The similar-ticket and KB relevance floors, calibrated on related tickets against off-topic ones.
bench-floors: $(STAMP)
	$(BIN)/python benchmarks/floor_calibration.py

# The fault matrix (issue 12): tickets opened while SDP, the LLM, Redis, Postgres, the daemon or run workers fail;
# one row per scenario (exactly once, missing, duplicates, stuck, seconds to drain). An hour or more.
faults: $(STAMP)
	$(BIN)/python benchmarks/faults.py

# Seconds from ticket to note, a burst's drain rate, CPU per ticket and idle memory, for each way runs are launched
# (issue 16): a process per run, warm workers polled, warm workers with push. 30-40 minutes on 2 cores.
latency:
	$(MAKE) install EXTRAS=dev,bench
	$(BIN)/python benchmarks/latency.py
