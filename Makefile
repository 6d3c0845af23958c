# AER Lab: `make run` serves the dashboard on 127.0.0.1; `make test` runs the whole suite.
# Both create .venv at the repository root when missing and install from the project's own files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
STAMP := $(VENV)/.installed

.PHONY: run test data venv bench clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	# torchattacks pins requests~=2.25.1, which conflicts with streamlit: no deps here
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

data: $(STAMP)
	@bash .ci/ensure-data
	@$(PY) -m engine data fashion_mnist

run: data
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: data
	$(PY) -m pytest -q

bench: data
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
