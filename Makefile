# Two commands do all set-up: `make run` (the default demo) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# worker processes of the test suite (pytest-xdist; tests/conftest.py says which tests share one)
TEST_WORKERS ?= 2
SNAKEMAKE := $(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default

.PHONY: venv run test test-cluster cluster-deps browser-deps r-deps lint format config-docs clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# the results folder the config names, evaluated once, when first used
OUTDIR = $(eval OUTDIR := $(shell $(BIN)/python -c 'import yaml; from csfcart.config import validate_config as v; c = v(yaml.safe_load(open("config/config.yaml")), "config/schemas/config.schema.yaml"); print(c["results"] + "/" + c["dataset"])' 2>/dev/null || echo results/csf_bcma_cart))$(OUTDIR)

run: venv
	$(SNAKEMAKE)
	$(SNAKEMAKE) --report $(OUTDIR)/report.html
	@echo
	@echo "Results: $(OUTDIR)/"
	@echo "Report:  $(OUTDIR)/report.html"
	@echo "Claims:  $(OUTDIR)/claims.tsv"

lint: venv
	$(BIN)/ruff check src tests workflow/scripts scripts
	$(BIN)/ruff format --check src tests workflow/scripts scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --configfile config/datasets/csf_bcma_cart_tiny.yaml

format: venv
	$(BIN)/ruff check --fix src tests workflow/scripts scripts
	$(BIN)/ruff format src tests workflow/scripts scripts
	$(BIN)/snakefmt Snakefile workflow/rules

# config/README.md: every key of the config schema with its default (a test checks it is current)
config-docs: venv
	$(BIN)/python -c 'from csfcart.config import config_docs; open("config/README.md", "w").write(config_docs("config/schemas/config.schema.yaml"))'

test: venv lint browser-deps r-deps
	CSFCART_BROWSER_TESTS=1 CSFCART_R_TESTS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=25

# Debian's Chromium, for the test that opens the report in a real headless browser.
browser-deps:
	@command -v chromium >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# R with Debian's hdf5r, for the test that reads the annotated object from R.
r-deps:
	@command -v Rscript >/dev/null && Rscript -e 'library(hdf5r)' >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-cran-hdf5r; }

# A real single-node SLURM on localhost (Debian's slurm-wlm and munge; needs root).
cluster-deps:
	@command -v sbatch >/dev/null && command -v munged >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge; }

test-cluster: venv cluster-deps
	CSFCART_SLURM=1 timeout -k 30 2700 $(BIN)/python -m pytest -q tests/cluster

clean:
	rm -rf results .snakemake
