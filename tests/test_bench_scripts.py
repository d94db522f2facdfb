"""The benchmark scripts' own logic: the Winograd formulation is exact, the epoch bench runs
the commands it names, the bf16 guard bench compiles with and without the guard, the NNX
bench times what it names."""

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.benchmarks import (bench_bf16_guard, bench_epochs, bench_nnx, bench_processes,
                                    bench_winograd)
from jaxcnn import functional as F
from jaxcnn.functional import _ynn_guard


@pytest.mark.parametrize("shape,c_out,pad", [((2, 7, 9, 3), 4, 0), ((1, 8, 8, 5), 6, 1),
                                             ((2, 5, 6, 2), 3, 1)])
def test_winograd_equals_conv_in_values_and_gradients(shape, c_out, pad):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, shape[-1], c_out)), jnp.float32)
  ref = lambda x, w: F.conv(x, w, padding=pad)  # noqa: E731
  win = lambda x, w: bench_winograd.winograd_conv3x3(x, w, pad)  # noqa: E731
  y_ref, y_win = ref(x, w), win(x, w)
  assert y_win.shape == y_ref.shape
  np.testing.assert_allclose(y_win, y_ref, rtol=1e-5, atol=1e-5)
  g = jnp.asarray(rng.standard_normal(y_ref.shape), jnp.float32)
  for a, b in zip(jax.vjp(win, x, w)[1](g), jax.vjp(ref, x, w)[1](g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_bench_epochs_commands_name_real_modules_and_configs(tmp_path):
  root = Path(bench_epochs.__file__).resolve().parents[2]
  args = argparse.Namespace(image_folder="data.tar.gz", epochs=3)
  for row in bench_epochs.ROWS:
    cmd = bench_epochs._command(row, args, tmp_path)
    module = cmd[cmd.index("-m") + 1]
    assert (root / (module.replace(".", "/") + ".py")).exists(), module
    assert "3" in cmd or "--config.num_epochs=3" in cmd
  assert "channels_last" in bench_epochs._command("torch_cl", args, tmp_path)
  with pytest.raises(ValueError, match="'nope'"):
    bench_epochs._command("nope", args, tmp_path)


def test_bench_epochs_refuses_one_epoch_and_unknown_rows(capsys):
  with pytest.raises(SystemExit):
    bench_epochs.main(["--image-folder", "x", "--epochs", "1"])
  assert "--epochs must be >= 2" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    bench_epochs.main(["--image-folder", "x", "--rows", "jaxcnn,pytorch"])
  assert "unknown row 'pytorch'" in capsys.readouterr().err


def test_bench_bf16_guard_forces_the_guard_and_restores_it():
  x, w = jnp.ones((1, 4, 4, 2), jnp.bfloat16), jnp.ones((3, 3, 2, 2), jnp.bfloat16)
  # A fresh function each time: make_jaxpr caches the trace of one function object.
  barriers = lambda: str(jax.make_jaxpr(lambda x, w: F.conv(x, w))(x, w)).count(  # noqa: E731
      "optimization_barrier")
  before = _ynn_guard._installed_jaxlib_affected
  with bench_bf16_guard.guard(True):
    assert barriers() == (2 if jax.default_backend() == "cpu" else 0)
  with bench_bf16_guard.guard(False):
    assert barriers() == 0
  assert _ynn_guard._installed_jaxlib_affected is before


def test_bench_nnx_refuses_tables_without_the_linen_row_and_unknown_names(capsys):
  for argv, message in ((["--rows", "nnx"], "--rows must include 'linen'"),
                        (["--nets", "vgg"], "unknown net 'vgg'"),
                        (["--rows", "linen,flax"], "unknown row 'flax'")):
    with pytest.raises(SystemExit):
      bench_nnx.parse_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.slow  # two compilations of the tutorial CNN's step
def test_bench_nnx_times_both_rows_on_the_same_computation(capsys):
  medians = bench_nnx.main(["--nets", "tutorial", "--batch-sizes", "4", "--reps", "2",
                            "--block", "1"])
  assert set(medians[("tutorial", 4)]) == {"linen", "nnx"}
  assert all(t > 0 for t in medians[("tutorial", 4)].values())
  # 5 steps: the compiling one, then 2 turns of one untimed and one timed step
  assert "nnx: the same losses as linen over 5 steps, up to 0.00e+00" in capsys.readouterr().out


def test_bench_processes_runs_one_process_plainly_and_more_through_the_launcher(tmp_path):
  args = argparse.Namespace(image_folder="data.tar.gz", steps=300)
  cmd, env = bench_processes.command("1x4", args, tmp_path)
  assert cmd[cmd.index("-m") + 1] == "experiments.train"
  assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4"
  cmd, env = bench_processes.command("2x1", args, tmp_path)
  assert cmd[cmd.index("-m") + 1:cmd.index("--")] == [
      "experiments.launch", "-n", "2", "--devices-per-process", "1"]
  assert "--config.parallel=mesh" in cmd and "--config.num_train_steps=300" in cmd
  assert "XLA_FLAGS" not in env  # the launcher sets each process's devices


@pytest.mark.parametrize("row,match", [("2", "must be '<processes>x<devices per process>'"),
                                       ("0x1", "must be"), ("3x1", "does not split over 3")])
def test_bench_processes_refuses_bad_rows(row, match, capsys):
  with pytest.raises(SystemExit):
    bench_processes.main(["--image-folder", "x", "--rows", row])
  assert match in capsys.readouterr().err
