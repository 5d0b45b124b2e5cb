# focal_mm: the two commands of the README, and the set-up they share.
#   make test   set up the environment if needed, lint (flake8, setup.cfg),
#               then run the test suite (GPU tests deselected: pytest.ini)
#   make demo   set up if needed, then train and evaluate the demo detector
#   make env    only set up (or check) the environment in .venv
PYTHON := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: env test demo

env:
	bash tools/setup_env.sh

test: env
	$(PYTHON) -m flake8 focal_mm tools tests configs setup.py
	$(PYTHON) -m pytest tests -q -ra --durations=15 $(PYTEST_ARGS)

demo: env
	$(PYTHON) tools/demo.py
