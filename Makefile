# Two commands on a fresh machine: `make run` and `make test` (both set up .venv first).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out
SHEET ?= campaigns/spring-launch.csv

# No outside calls from Prefect; a project-local Prefect home unless one is given.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export PREFECT_HOME ?= $(CURDIR)/.cache/prefect
export HF_HUB_OFFLINE := 1

.PHONY: venv browser postgres fonts run test bench screenshots clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); [ "$$free" -ge 7 ] || \
	  echo "warning: $$free GiB free here; $(VENV) needs about 7 GiB (PyTorch's CUDA build and its libraries)" >&2
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir --editable '.[test]'
	touch $@

# Headless Chromium for the review page's browser test (Debian packages). Without root or
# apt-get the browser test is skipped with its reason; everything else still runs.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; } || \
	  echo "warning: could not install chromium + chromium-driver; the browser test will be skipped" >&2

# PostgreSQL server binaries for the review queue's PostgreSQL tests (Debian's postgresql; the
# tests start their own server). Without them those tests are skipped with their reason.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } || \
	  echo "warning: could not install postgresql; the PostgreSQL review-queue tests will be skipped" >&2

# Noto fonts for localised overlays (Debian's fonts-noto-core: Latin, Greek, Cyrillic, Arabic,
# Hebrew, Devanagari, Thai; fonts-noto-cjk: Chinese, Japanese, Korean). Without them, overlay text
# in those scripts is an error on its row (never tofu) and the tests that need them are skipped.
fonts:
	@ls /usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-core fonts-noto-cjk >/dev/null; } || \
	  echo "warning: could not install fonts-noto-core + fonts-noto-cjk; non-Latin overlay text will be refused and its tests skipped" >&2

run: venv fonts
	$(VENV)/bin/brandbatch run $(SHEET) --out $(OUT)

test: venv browser postgres fonts
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run_all.py $(BENCH_ARGS)

# The docs' screenshots (docs/screenshots/*.png), from the review app on a demo campaign run on
# the tiny offline models, in headless Chromium (scripts/screenshots.py).
screenshots: venv browser fonts
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(OUT) .cache .pytest_cache
