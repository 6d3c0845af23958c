# AER Lab: `make run` serves the dashboard on 127.0.0.1; `make test` runs the whole suite, `make lint`
# the linters. All create .venv at the repository root when missing and install from the project's
# own files: requirements.txt (runtime pins), pyproject.toml (the package, its `aer` command and the
# dev group) and requirements-nodeps.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format data venv bench clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# pip >= 25.1 reads PEP 735 dependency groups (--group dev)
	$(PY) -m pip install --quiet pip==26.3
	$(PY) -m pip install --quiet -r requirements.txt --group dev
	# torchattacks pins requests~=2.25.1, which conflicts with streamlit, and adv-lib needs visdom, which
	# does not build (for loggers FMN never uses): no deps here
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

data: $(STAMP)
	@bash .ci/ensure-data
	@$(PY) -m engine data fashion_mnist

run: data
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: data
	$(PY) -m pytest -q

test-fast: data
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	# docs in step with the registries, citations that resolve, every in-function import with its reason
	$(PY) -m pytest -q -p no:randomly tests/test_docs.py tests/test_links.py tests/test_house.py

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: data
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
