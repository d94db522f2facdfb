# Leg: the oneDNN CPU extension (jaxcnn.cpu.onednn), in a fresh virtual environment as a user
# installs it: `pip install '.[onednn,test]'` (the oneDNN CPU wheels; the extension compiles itself
# with the machine's g++ on first use). Sourced by .ci/run from the checkout root.
venv=$(mktemp -d)/onednn
python3 -m venv "$venv"
"$venv/bin/pip" install -q ".[onednn,test]"
# A fresh build cache: the first activate() compiles the library; it must work here, or the leg
# fails with the reason available() gives.
export JAXCNN_CACHE_DIR
JAXCNN_CACHE_DIR=$(mktemp -d)
"$venv/bin/python" -c "from jaxcnn.cpu import onednn; ok, why = onednn.available(); assert ok, why; print(onednn.activate())"
# The extension's own tests (against lax), then the op, layer, model, inspection and train-step
# tests with the extension active for the whole session (tests/conftest.py reads
# JAXCNN_TEST_ONEDNN; the library never does). No TensorFlow here: TF-only tests skip.
JAXCNN_TEST_ONEDNN=1 "$venv/bin/python" -m pytest -n 2 -q -m "not slow" \
  tests/test_cpu_onednn.py tests/test_functional_conv.py tests/test_layers.py \
  tests/test_models.py tests/test_inspect.py tests/test_train_steps.py
unset JAXCNN_CACHE_DIR
