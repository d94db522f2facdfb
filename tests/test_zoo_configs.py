"""The zoo's training configs: each one loads without starting JAX, validates, builds its model,
and the train CLI runs it end to end ('auto' dtype resolved when the model is built)."""

import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.train import run, validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
ZOO_CONFIGS = ("resnet20_cifar10", "vgg16_cifar10", "preact_resnet18_cifar10",
               "resnet9_cifar10", "resnet18_imagenette")


@pytest.mark.parametrize("name", ZOO_CONFIGS)
def test_config_loads_without_starting_jax(name):
  # XLA reads XLA_FLAGS when JAX starts: a config that started it (e.g. by asking
  # jax.default_backend() for its dtype) made the CLI's CPU flags come too late.
  code = (f"from jaxcnn.configs import {name} as m; c = m.get_config(); "
          "from jaxcnn.cpu import flags; print(flags.backends_started(), c.dtype)")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.split() == ["False", "auto"]


@pytest.mark.parametrize("name", ZOO_CONFIGS)
def test_config_validates_and_builds_its_model(name):
  import importlib
  config = importlib.import_module(f"jaxcnn.configs.{name}").get_config()
  model = run.make_model(validate(config), 10)
  assert model.dtype == jnp.float32  # 'auto' on this CPU


def test_imagenette_config_takes_160px_images():
  import jax
  from jaxcnn.configs import resnet18_imagenette
  cfg = validate(resnet18_imagenette.get_config())
  assert (cfg.data.image_size, cfg.data.loader, cfg.model_kwargs["stem"]) == (160, "host",
                                                                              "imagenet")
  model = run.make_model(cfg, 10)
  out = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0],
                       jax.ShapeDtypeStruct((2, 160, 160, 3), jnp.float32))
  assert out.shape == (2, 10)


def test_auto_dtype_is_bfloat16_on_accelerators_and_unknown_names_fail():
  assert run.compute_dtype("auto", "cpu") == jnp.float32
  assert run.compute_dtype("auto", "gpu") == jnp.bfloat16
  assert run.compute_dtype("auto", "tpu") == jnp.bfloat16
  assert run.compute_dtype("bfloat16", "cpu") == jnp.bfloat16
  with pytest.raises(ValueError, match="unknown `dtype` \\(='half'\\)"):
    run.compute_dtype("half")


@pytest.mark.slow  # one ResNet-20 compilation through the CLI: ~30 s
def test_cli_trains_the_resnet20_config(tmp_path):
  rng = np.random.default_rng(0)
  root = data.write_image_folder(tmp_path / "folder",
                                 rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8),
                                 np.arange(96) % 10, data.get_info("cifar10").class_names)
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config",
       "jaxcnn/configs/resnet20_cifar10.py", "--workdir", str(tmp_path / "run"),
       "--config.num_epochs=1", "--config.batch_size=32", f"--config.data.image_folder={root}",
       "--config.data.train_split=train[:64]", "--config.data.eval_split=train[64:]",
       "--config.plots=False", "--config.progress=False"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["epoch"] == 1 and record["step"] == 2 and np.isfinite(record["eval_loss"])
