# focal_mm: the two commands of the README, and the set-up they share.
#   make test   set up the environment if needed, then run the test suite
#   make demo   set up if needed, then train and evaluate the demo detector
#   make env    only set up (or check) the environment in .venv
PYTHON := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: env test demo

env:
	bash tools/setup_env.sh

test: env
	$(PYTHON) -m pytest tests -q -ra --durations=15 $(PYTEST_ARGS)

demo: env
	$(PYTHON) tools/demo.py
