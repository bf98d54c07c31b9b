# The two commands of the README, plus their building blocks.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
DATA_ROOT ?= data/synthetic
PYTEST_ARGS ?=
# pytest-xdist workers (one per core); `make test PYTEST_WORKERS=0` runs in this process.
# The groups go out in the order tests/conftest.py sorts them: the pipeline's, the longest, first.
PYTEST_WORKERS ?= auto

.PHONY: install test demo clean-demo

install:
	bash scripts/install.sh

test: install
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

demo: install
	$(PYTHON) tools/run_pipeline.py --data-root $(DATA_ROOT) --work-dir work_dirs/demo --preset tiny --synthetic --jobs 2

clean-demo:
	rm -rf work_dirs/demo
