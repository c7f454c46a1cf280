# Set-up and checks. Every target bootstraps .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
PYTEST_ARGS ?=
# The CPU build of torch that this machine class has on disk; other versions download CUDA builds.
TORCH ?= torch==2.13.0

.PHONY: test lint bench bench-quick demo clean proto crds tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q '$(TORCH)'
	$(BIN)/python -m pip install -q -e '.[operator,trainer,test]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check sdk operator tests benchmarks
	$(BIN)/ruff format --check sdk operator tests benchmarks
	$(BIN)/mypy

# pytest exits 5 when it collects nothing (e.g. an empty marker selection): not a failure.
test: lint tools
	$(BIN)/python -m tests.tools prometheus chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/search_quality.py
	$(BIN)/python benchmarks/suggest_latency.py

# The search-quality subset that answers in about 5 minutes.
bench-quick: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/search_quality.py --quick --out benchmarks/results/search_quality_quick.json

# Tune the example TuningJob on this machine: Bayesian search + ASHA, the real trainer, CPU.
demo: $(STAMP)
	$(BIN)/kubetune run manifests/examples/digits-bayesian.yaml --workdir .kubetune/demo
	$(BIN)/kubetune best --workdir .kubetune/demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Regenerate the committed gRPC stubs from sdk/kubetune/rpc/kubetune.proto.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I sdk --python_out=sdk --grpc_python_out=sdk --pyi_out=sdk sdk/kubetune/rpc/kubetune.proto

# Regenerate every generated copy: the CRDs (manifests/crds/ and the chart) and the RBAC rules
# from the Python sources, then manifests/install.yaml and manifests/monitoring/ from the chart.
crds: $(STAMP)
	$(BIN)/python -m kubetune_operator.crds --helm "$$($(BIN)/python -m tests.tools helm)"

# Real kubectl and helm, and the control plane built from the Kubernetes sources (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler), into the git-ignored .tools/.
# The Go module and build caches live in .tools/go, so a second run builds nothing.
tools: $(STAMP)
	$(BIN)/python -m tests.tools
	$(BIN)/python -m tests.cluster.build
