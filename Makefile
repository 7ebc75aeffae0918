# Two commands for a fresh clone:  make demo   and   make test
# Both create .venv when missing and install into it once; the stamp file records that the
# environment matches pyproject.toml and constraints.txt, so later runs (offline too) skip pip.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tlkit-installed

.PHONY: demo test install chromium doctor bench badges exercises grade-demo clean-venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	@touch $@

install: $(STAMP) chromium

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
test: $(STAMP) chromium
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

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

# The whole nbgrader chain, offline, on sample submissions; prints the grades CSV.
grade-demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) tools/grade_demo.py
