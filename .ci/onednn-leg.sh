# Leg: the oneDNN CPU extension (jaxcnn.cpu.onednn), in a fresh virtual environment as a user
# installs it: `pip install '.[onednn,test]'` (the oneDNN 3.2 CPU wheels; the extension compiles
# itself with the machine's g++ on first use). Meant to be pasted into (or sourced by) .ci/run,
# which has already cd'ed to the checkout root and set `set -euo pipefail`.
echo "+ [leg: oneDNN CPU extension]"
venv=$(mktemp -d)/onednn
python3 -m venv "$venv"
"$venv/bin/pip" install -q ".[onednn,test]"
# A fresh build cache: the first activate() compiles the library (about 15 s on 2 cores); it
# must work here, or the leg fails with the reason available() gives.
export JAXCNN_CACHE_DIR
JAXCNN_CACHE_DIR=$(mktemp -d)
"$venv/bin/python" -c "from jaxcnn.cpu import onednn; ok, why = onednn.available(); assert ok, why; print(onednn.activate())"
# The extension's own tests (against lax), then the op, layer, model, inspection and train-step
# tests with the extension active for the whole session (tests/conftest.py reads
# JAXCNN_TEST_ONEDNN; the library never does). No TensorFlow here: TF-only tests skip.
"$venv/bin/python" -m pytest -n 2 -q tests/test_cpu_onednn.py
JAXCNN_TEST_ONEDNN=1 "$venv/bin/python" -m pytest -n 2 -q -m "not slow" \
  tests/test_cpu_onednn.py tests/test_functional_conv.py tests/test_layers.py \
  tests/test_models.py tests/test_inspect.py tests/test_train_steps.py
