"""Strict JAX test configuration, applied before any test imports JAX.

* 8 CPU devices, so multi-device code (pmap, Mesh sharding) is tested on any machine.
* ``jax_numpy_rank_promotion='raise'``: an implicit broadcast between arrays of different
  rank is an error, so shape bugs cannot hide behind broadcasting.
* TensorFlow (used by the input pipelines) is kept quiet and off every accelerator. Where it is
  not installed (CI's Colab leg), tests marked ``tf`` and tests that fail only because a TF route
  was asked for (``TensorFlowMissingError``, or ``tensorflow`` missing inside tfds) are skipped,
  with that reason.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
if not hasattr(jax, "enable_x64"):  # jax < 0.8 (Colab's 0.7.2) has it under jax.experimental
  from jax.experimental import enable_x64 as _enable_x64  # noqa: E402
  jax.enable_x64 = _enable_x64
jax.config.update("jax_numpy_rank_promotion", "raise")

# CI's oneDNN leg runs the suite with the oneDNN CPU extension active (JAXCNN_TEST_ONEDNN=1): it
# must build and load, or the session fails here. Read only by the tests, never by the library.
if os.environ.get("JAXCNN_TEST_ONEDNN") == "1":
  from jaxcnn.cpu import onednn as _onednn  # noqa: E402
  print(_onednn.activate())

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """``../shared/data`` beside the checkout: the real CIFAR-10 / MNIST training splits."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real-data test: {SHARED_DATA} is absent (see README, 'Data')")
  return SHARED_DATA


def _tf_missing() -> bool:
  from jaxcnn.data import has_tensorflow
  return not has_tensorflow()


def pytest_collection_modifyitems(config, items):
  if _tf_missing():
    skip = pytest.mark.skip(reason="needs TensorFlow: pip install 'jaxcnn[tf]'")
    for item in items:
      if "tf" in item.keywords:
        item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  outcome = yield
  report = outcome.get_result()
  if call.excinfo is None or report.outcome != "failed" or not _tf_missing():
    return
  from jaxcnn.data import TensorFlowMissingError
  e = call.excinfo.value
  if isinstance(e, TensorFlowMissingError) or (
      isinstance(e, ModuleNotFoundError) and e.name in ("tensorflow", "tensorflow_datasets")):
    report.outcome = "skipped"
    report.longrepr = (str(item.path), item.location[1] or 0,
                       f"Skipped: needs TensorFlow ({type(e).__name__}: {str(e)[:80]})")
