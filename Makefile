# Two commands for a fresh clone:  make demo   and   make test
# Both create .venv when missing and install into it once; the stamp file records that the
# environment matches pyproject.toml and constraints.txt, so later runs (offline too) skip pip.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tlkit-installed

.PHONY: demo test test-full install chromium bubblewrap proxy doctor bench badges exercises grade-demo grade-samples bench-autograde ddp-check gpu-check clean-venv

# tlkit for the lessons and tests, and grader/ (tlgrade: nbgrader, answer keys, sandbox) for
# instructors and CI. A student's install is tlkit alone.
$(STAMP): pyproject.toml grader/pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev]" -e "grader[hub]"
	@touch $@

install: $(STAMP) chromium bubblewrap proxy

# JupyterHub's proxy, for the deployment test (tests/test_hub.py): from npm, as JupyterHub says.
proxy:
	@if command -v configurable-http-proxy >/dev/null; then :; \
	elif command -v npm >/dev/null; then npm install -g --silent configurable-http-proxy >/dev/null || \
		echo "could not install configurable-http-proxy: the JupyterHub test will be skipped"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		{ apt-get install -y -qq nodejs npm >/dev/null || \
		  { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }; } && \
		npm install -g --silent configurable-http-proxy >/dev/null || \
		echo "could not install configurable-http-proxy: the JupyterHub test will be skipped"; \
	else echo "configurable-http-proxy is missing (npm install -g configurable-http-proxy): the JupyterHub test will be skipped"; fi

# Grading runs every submission inside bubblewrap (Debian's bwrap). As root, install it here.
bubblewrap:
	@if command -v bwrap >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -qq bubblewrap >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || \
		echo "could not install bubblewrap: grading tests will fail (apt-get install bubblewrap)"; \
	else echo "bubblewrap is missing: as root run  apt-get install bubblewrap  (grading needs it)"; fi

# The browser test drives Debian's Chromium. Install it here, not during the tests: as root with
# apt-get (the package registries reachable); otherwise say how, and let that test fail loudly.
chromium:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -qq chromium chromium-driver >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "could not install Chromium: the browser test will fail (apt-get install chromium chromium-driver)"; \
	else echo "Chromium is missing: as root run  apt-get install chromium chromium-driver  (the browser test needs it)"; fi

demo: $(STAMP)
	$(PY) -m tlkit demo

# The venv's bin/ goes first on PATH: nbgrader runs `alembic` from there.
test: $(STAMP) chromium bubblewrap proxy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

# FULL mode offline: every lesson with TLKIT_FULL=1 against tiny stand-ins of the downloaded data
# sets and random ResNet-50 weights, served from 127.0.0.1 (tests/standins/). make test runs
# it too; this target runs it alone.
test-full: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests/test_full.py --durations=0

# fit under torchrun: 2 CPU processes (gloo) against one process with the doubled batch; last
# line DDP ranks=2 identical=True max_diff_vs_single=...
ddp-check: $(STAMP)
	$(PY) tools/ddp_check.py

# On a CUDA machine: bench/gpu.py (P2cuda, P3), the CUDA tests, every lesson with FULL=False and
# with FULL=True, within a 10-minute budget it enforces. Log bench/gpu-check.log, figures
# bench/gpu-results.json. Without a GPU it says so and stops. One script: tools/gpu_check.sh.
gpu-check: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" MAKE="$(MAKE)" bash tools/gpu_check.sh

doctor: $(STAMP)
	$(PY) -m tlkit doctor

bench: $(STAMP)
	$(PY) bench/feature_cache.py
	$(PY) bench/train_step.py
	$(PY) bench/import_time.py

clean-venv:
	rm -rf $(VENV)

# Rewrite Colab badges and install cells from pyproject.toml's Repository address.
badges: $(STAMP)
	$(PY) tools/notebooks.py sync
	$(MAKE) exercises

# The student versions: nbgrader generates exercises/<name>/ from solutions/<name>/.
ASSIGNMENTS := $(notdir $(wildcard solutions/ex*))
exercises: $(STAMP)
	for name in $(ASSIGNMENTS); do \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/nbgrader generate_assignment $$name --force || exit 1; \
	done

# nbgrader's whole chain, offline, with three real Unix accounts (as root): release, fetch,
# submit, collect, autograde, feedback, export; prints the grades CSV (nbgrader's, Canvas, Moodle).
grade-demo: $(STAMP) bubblewrap
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) tools/grade_chain.py

# Every sample submission (solutions, mistakes, cheats) of every assignment, and its score.
grade-samples: $(STAMP) bubblewrap
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) tools/grade_demo.py

# Autograding serially against in parallel (tlgrade.parallel); last line P5 ... (N=24).
bench-autograde: $(STAMP) bubblewrap
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/autograde.py
