# Two commands for a fresh clone:  make demo   and   make test
# Both create .venv when missing and install into it once; the stamp file records that the
# environment matches pyproject.toml and constraints.txt, so later runs (offline too) skip pip.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tlkit-installed

.PHONY: demo test install doctor bench badges exercises grade-demo clean-venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m tlkit demo

# The venv's bin/ goes first on PATH: nbgrader runs `alembic` from there.
test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

doctor: $(STAMP)
	$(PY) -m tlkit doctor

bench: $(STAMP)
	$(PY) bench/feature_cache.py
	$(PY) bench/train_step.py

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
