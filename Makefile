# focal_mm: the two commands of the README, and the set-up they share.
#   make test   set up the environment if needed, then run the test suite
#   make env    only set up (or check) the environment in .venv
PYTHON := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: env test

env:
	bash tools/setup_env.sh

test: env
	$(PYTHON) -m pytest tests -q -ra --durations=15 $(PYTEST_ARGS)
