# asyncrl: two commands do everything from a fresh clone.
#   make demo   set up .venv, train A3C on CartPole-v1 (2 workers) until solved, evaluate, plot
#   make test   set up .venv, run the whole test suite (make test-fast: unit and CLI tests only)
#   make wheel-check  build the wheel, install it into a fresh venv with plain pip, train from it
# pyproject.toml gives compatible version ranges; constraints.txt pins the exact versions that
# make installs (and the tests run on).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test test-fast bench setup clean wheel-check

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test,mujoco,atari,vizdoom,box2d,envpool,video,ray,onnx,wandb,docs]'
	@touch $(STAMP)

# the documentation site, built into site/ (--strict: a warning, such as a broken link, fails it)
.PHONY: docs
docs: $(STAMP)
	$(PIP) -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

demo: $(STAMP)
	$(VENV)/bin/asyncrl train a3c --env CartPole-v1 --workers 2 --config configs/cartpole-a3c.yaml \
		--run-dir runs/demo --overwrite
	$(VENV)/bin/asyncrl eval runs/demo --episodes 20
	$(VENV)/bin/asyncrl plot runs/demo
	@echo "run folder: runs/demo  (config.yaml, episodes.csv, metrics.csv, tb/, checkpoints/, learning_curve.png)"

# Two pytest workers (pytest-xdist): on 2 cores the suite's many waits (interpreters starting,
# timeouts running out, Ray starting) overlap with the other's work. --dist loadgroup hands
# out tests one at a time, except a module's tests that share a module-scoped fixture (a Ray
# cluster, a trained run), which tests/conftest.py groups onto one worker.
test: $(STAMP)
	$(PY) -m pytest -q -ra --durations=25 -n 2 --dist loadgroup

# the fast tier: unit and CLI tests, no learning runs (about 2-3 minutes on 2 cores)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n 2 --dist loadgroup tests/unit tests/integration/test_cli.py

# The package as a user gets it: `python -m build` (sdist, then the wheel from it), the wheel
# installed into a fresh venv that has only pip (with constraints.txt: the tested versions),
# then `asyncrl train a3c --env CartPole-v1 --config cartpole-a3c` run outside the source tree;
# and a second venv with the lower bounds of pyproject.toml's ranges. Apart from make test: it
# installs torch & co. twice (about 3-4 minutes here, where the wheels lie on local disk).
wheel-check: $(STAMP)
	ASYNCRL_WHEEL_CHECK=1 $(PY) -m pytest -q -ra -p no:cacheprovider tests/integration/test_wheel.py

# Benchmarks are out of CI: they need the peer (Stable-Baselines3) and quiet cores.
bench: $(STAMP)
	$(PIP) -e '.[test,mujoco,atari,envpool,video,ray,onnx,wandb,bench]'
	$(PY) benchmarks/cartpole_time_to_solve.py

clean:
	rm -rf $(VENV) runs .pytest_cache
