# Two commands: `make demo` and `make test`. Each sets up whatever is missing first
# (.venv with the package and its test tools, Java 17+), and is quick when all is there.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deepframes-installed
EXTRAS := dev

.PHONY: demo test setup bench clean

demo: setup
	$(BIN)/deepframes demo

test: setup
	@scripts/ensure-chromium.sh
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/read_images.py
	$(BIN)/python bench/featurize.py
	$(BIN)/python bench/cold.py --counts 600,2000,6000 --plot docs/cold-start.png
	$(BIN)/python bench/small_jobs.py
	$(BIN)/python bench/blocks.py
	$(BIN)/python bench/matmul.py
	$(BIN)/python bench/distributor.py
	$(BIN)/python bench/study.py
	$(BIN)/python bench/tune.py
	$(BIN)/python bench/estimator.py
	$(BIN)/python bench/not_recognised.py
	$(BIN)/python bench/serve.py

setup: $(STAMP)
	@scripts/ensure-java.sh $(BIN)/python
	@# Spark's classes archived once per Java and Spark version (~/.cache/deepframes): every later
	@# JVM of a session starts in half the time. Quick when the archive is there.
	@$(BIN)/python -c "from deepframes._class_archive import prepare; prepare()"

$(STAMP): pyproject.toml scripts/ensure-venv.sh
	@scripts/ensure-venv.sh $(VENV)
	$(BIN)/python -m pip install --quiet --editable '.[$(EXTRAS)]'
	@# tf_keras (Keras 2) for MirroredStrategyRunner's model.fit: --no-deps, since it declares
	@# `tensorflow` and pip would add a second TensorFlow wheel beside tensorflow-cpu.
	@version=$$($(BIN)/python -c "import importlib.metadata as m; print(m.version('tensorflow-cpu'))" 2>/dev/null) \
		&& $(BIN)/python -m pip install --quiet --no-deps "tf-keras==$${version%.*}.*" || true
	@touch $(STAMP)

clean:
	rm -rf $(VENV) deepframes-demo .pytest_cache

# Peer engines for bench/featurize.py (Daft, Ray Data), in their own environment, never in .venv.
PEERS := bench/.venv-peers
.PHONY: bench-peers
bench-peers: $(PEERS)/.peers-installed

$(PEERS)/.peers-installed:
	python3 -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS)/bin/python -m pip install --quiet 'daft==0.7.*' 'ray[data]>=2,<3' onnxruntime pillow numpy
	@touch $@
