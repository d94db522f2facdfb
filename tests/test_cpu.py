"""jaxcnn.cpu: importing and tracing change nothing; ``enable()`` turns CPU acceleration on, says
so in one line, and says what it could not do.

Most tests run a fresh Python process (XLA reads its flags once per process; JAX's settings are
global) with ``HOME`` pointed at an empty folder, so that any file written shows up.
"""

import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import pytest

import jaxcnn.cpu
from jaxcnn.cpu import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(code, home, **env_overrides):
  """Runs ``code`` in a fresh process with HOME=home and no jaxcnn or XLA settings inherited."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "JAXCNN_CACHE_DIR", "JAX_PLATFORMS")}
  env.update(HOME=str(home), **env_overrides)
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout.splitlines()


def _files(root):
  return sorted(str(p.relative_to(root)) for p in pathlib.Path(root).rglob("*") if p.is_file())


# Imports every jaxcnn module, then traces and runs ops, a model and a train step: before and
# after, the environment, every JAX setting and the files under HOME must be the same. The
# libraries jaxcnn builds on are imported first (their own import-time effects are theirs), and
# matplotlib keeps its font cache outside HOME (MPLCONFIGDIR).
SIDE_EFFECTS = r"""
import json, os, pkgutil, importlib
import jax, jax.numpy as jnp, flax, optax, numpy as np, matplotlib, ml_collections, PIL, tqdm
env = dict(os.environ)
def config():
  return {k: repr(v) for k, v in jax.config.values.items()}
before = config()
import jaxcnn
names = [m.name for m in pkgutil.walk_packages(jaxcnn.__path__, "jaxcnn.")]
for name in names:
  importlib.import_module(name)
from jaxcnn import functional as F, models
from jaxcnn.train import parallel, train_step
from jaxcnn.train.state import create_train_state
x = jnp.ones((2, 8, 8, 3)); w = jnp.ones((3, 3, 3, 4))
jax.jit(lambda x, w: F.conv(x, w))(x, w)
jax.jit(jax.grad(lambda x, w: F.conv(x, w, padding="SAME").sum(), (0, 1)))(x, w)
model = models.get_model("tutorial_cnn")
state = create_train_state(model, jax.random.PRNGKey(0), (1, 32, 32, 3), optax.adam(1e-3))
jax.jit(lambda v, x: model.apply(v, x))({"params": state.params}, jnp.ones((2, 32, 32, 3)))
par = parallel.Parallel("none")
batch = par.put_batch({"image": np.ones((4, 32, 32, 3), np.float32),
                       "label": np.zeros(4, np.int32)})
state, m = par.compile_train(train_step)(par.put_state(state), batch)
jax.block_until_ready(m)
changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
after = config()
print(json.dumps({"modules": len(names), "env": changed,
                  "config": sorted(k for k in set(before) | set(after)
                                   if before.get(k) != after.get(k))}))
"""


def test_importing_every_module_and_tracing_a_train_step_changes_nothing(tmp_path):
  home = tmp_path / "home"
  home.mkdir()
  out = _run(SIDE_EFFECTS, home, MPLCONFIGDIR=str(tmp_path / "mpl"))
  result = json.loads(out[-1])
  assert result["modules"] > 20  # the walk found the package
  assert result["env"] == [] and result["config"] == []
  assert _files(home) == []


def test_enable_prints_one_line_and_turns_on_what_it_says(tmp_path):
  code = ("import os, jax, jaxcnn.cpu; s = jaxcnn.cpu.enable(tuning_budget_s=12, onednn=False)\n"
          "print(repr(os.environ.get('XLA_FLAGS', '')), jax.config.jax_compilation_cache_dir,"
          " s.tuning, s.tuning_budget_s, s.platform)")
  out = _run(code, tmp_path)
  assert len(out) == 2, out
  line, state = out
  cache = tmp_path / ".cache" / "jaxcnn"
  expected = flags.recommended()
  assert line.startswith("jaxcnn.cpu: on: ") and "conv tuning (at most 12 s of measuring)" in line
  assert f"compilation cache ({cache / 'xla'})" in line
  assert (expected.note or "") in line
  assert ("XLA flags (" in line) == bool(expected.flags)
  assert state.split() == [repr(" ".join(expected.flags)), str(cache / "xla"), "True", "12.0",
                           "cpu"]
  assert _files(tmp_path) == []  # nothing written until something is compiled or measured


def test_enable_after_jax_started_says_the_flags_come_too_late(tmp_path):
  code = ("import jax; jax.numpy.zeros(1).block_until_ready(); import os, jaxcnn.cpu\n"
          "s = jaxcnn.cpu.enable(compilation_cache=False)\n"
          "print(repr(os.environ.get('XLA_FLAGS', '')), s.xla_flags, s.tuning)")
  line, state = _run(code, tmp_path)
  too_late = ("XLA flags not applied: JAX already started; call jaxcnn.cpu.enable() before the "
              "first computation")
  assert (too_late in line) == bool(flags.recommended().flags), line
  assert state == "'' () True"


def test_a_flag_the_user_set_is_kept_and_a_second_enable_is_harmless(tmp_path):
  user = "--xla_cpu_multi_thread_eigen=true"
  code = ("import os, jaxcnn.cpu; jaxcnn.cpu.enable(); s = jaxcnn.cpu.enable()\n"
          "print(os.environ['XLA_FLAGS'])")
  *lines, xla = _run(code, tmp_path, XLA_FLAGS=user)
  assert len(lines) == 2 and lines[0] == lines[1]
  assert xla.split() == [user, *flags.recommended().flags]


def test_on_another_platform_it_does_nothing_and_says_so(tmp_path):
  code = ("import os, jaxcnn.cpu; from jaxcnn.cpu import flags, tuning\n"
          "s = jaxcnn.cpu.enable()\n"
          "print(repr(os.environ.get('XLA_FLAGS', '')), s.tuning, tuning.is_enabled(),"
          " s.compilation_cache, flags.backends_started())")
  line, state = _run(code, tmp_path, JAX_PLATFORMS="tpu")  # JAX is never started: no TPU needed
  assert line == "jaxcnn.cpu: not a CPU backend (tpu): nothing to do"
  assert state == "'' False False None False"


def test_an_accelerator_counts_only_where_jax_has_its_plugin(monkeypatch):
  import jax
  if jax.config.jax_platforms:
    pytest.skip(f"JAX_PLATFORMS={jax.config.jax_platforms!r} decides the platform here")
  monkeypatch.setattr(flags, "backends_started", lambda: False)  # as before JAX starts
  monkeypatch.setattr(flags, "machine_accelerator", lambda: "gpu")
  monkeypatch.setattr(jaxcnn.cpu, "_jax_supports", lambda accelerator: True)
  assert jaxcnn.cpu._platform() == "gpu"
  monkeypatch.setattr(jaxcnn.cpu, "_jax_supports", lambda accelerator: False)
  assert jaxcnn.cpu._platform() == "cpu"  # a CPU-only jaxlib on a GPU machine runs on the CPU
  monkeypatch.setattr(flags, "machine_accelerator", lambda: None)
  assert jaxcnn.cpu._platform() == "cpu"


def test_a_compilation_cache_the_user_configured_is_kept(tmp_path):
  mine = tmp_path / "mine"
  code = (f"import jax; jax.config.update('jax_compilation_cache_dir', {str(mine)!r})\n"
          "import jaxcnn.cpu; s = jaxcnn.cpu.enable(verbose=False)\n"
          "print(jax.config.jax_compilation_cache_dir, s.compilation_cache)")
  assert _run(code, tmp_path) == [f"{mine} {mine}"]


def test_an_unwritable_cache_folder_turns_the_compilation_cache_off_saying_so(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  code = (f"import jaxcnn.cpu; s = jaxcnn.cpu.enable(cache_dir={str(blocker / 'c')!r})\n"
          "print(s.compilation_cache)")
  line, state = _run(code, tmp_path)
  assert f"compilation cache off: {blocker / 'c' / 'xla'} is not writable" in line
  assert state == "None"


def test_onednn_is_activated_when_installed_and_named_when_asked_for_but_missing(monkeypatch):
  import importlib.util
  import types
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  assert jaxcnn.cpu._onednn(True) == (False, "oneDNN extension not installed")
  assert jaxcnn.cpu._onednn("auto") == (False, None)
  assert jaxcnn.cpu._onednn(False) == (False, None)
  active = []
  ext = types.SimpleNamespace(available=lambda: (True, "oneDNN 3.2.0"), activate=lambda: active.append(1),
                              is_active=lambda: bool(active))
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
  monkeypatch.setitem(sys.modules, "jaxcnn.cpu.onednn", ext)  # what the import then returns
  assert jaxcnn.cpu._onednn("auto") == (True, None) and active == [1]
  ext.available = lambda: (False, "the oneDNN wheels are not installed")
  assert jaxcnn.cpu._onednn("auto") == (False, None)  # an optional extra: quiet unless asked for
  assert jaxcnn.cpu._onednn(True) == (
      False, "oneDNN extension not used: the oneDNN wheels are not installed")


@pytest.mark.parametrize("kwargs,message", [
    ({"flags": "yes"}, r"`flags` \(='yes'\) must be True or False"),
    ({"onednn": "maybe"}, r"unknown `onednn` \(='maybe'\); known: True, False, 'auto'"),
    ({"onednn": 1}, r"unknown `onednn` \(=1\); known: True, False, 'auto'"),
    ({"tuning_budget_s": -1}, r"`tuning_budget_s` \(=-1\) must be a number >= 0; seconds"),
])
def test_bad_arguments_are_refused_naming_the_value_before_anything_changes(kwargs, message):
  with pytest.raises(ValueError, match=message):
    jaxcnn.cpu.enable(**kwargs)
  assert jaxcnn.cpu._status is None


def test_status_before_enable_is_all_off():
  s = jaxcnn.cpu.status()
  assert (s.xla_flags, s.tuning, s.compilation_cache, s.onednn) == ((), False, None, False)
  assert jaxcnn.cpu.Status("cpu").line() == "jaxcnn.cpu: nothing turned on"


@pytest.mark.slow  # a fresh interpreter importing matplotlib and JAX: ~5-15 s
def test_the_shapes_lesson_starts_fast_for_a_new_user(tmp_path):
  """The lesson trains nothing: it turns nothing on, measures nothing and writes no cache."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXCNN_CACHE_DIR")}
  env["HOME"] = str(tmp_path / "home")
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  t0 = time.perf_counter()
  out = subprocess.run([sys.executable, "-m", "experiments.lessons", "shapes", "--quick",
                        "--out", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
  wall = time.perf_counter() - t0
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "jaxcnn.cpu" not in out.stdout
  # CPU-seconds: what the lesson costs, whatever else loads the machine (its wall time on a quiet
  # machine is close to it); measuring conv formulations made it cost minutes.
  assert cpu < 15, f"{cpu:.1f} CPU-s ({wall:.1f} s wall)"
  assert not (tmp_path / "home" / ".cache" / "jaxcnn").exists()


# A train step's temporaries are allocated afresh every step; with glibc's defaults each large one
# is a new mmap whose pages fault in again. enable(malloc=True) makes malloc reuse them.
FAULTS = r"""
import resource, sys
import jaxcnn.cpu
status = jaxcnn.cpu.enable(flags=False, tuning=False, compilation_cache=False, onednn=False,
                           malloc=sys.argv[1] == "on", verbose=False)
import jax, jax.numpy as jnp, optax
from jaxcnn import models
from jaxcnn.train import create_train_state, train_step
state = create_train_state(models.get_model("tutorial_cnn"), jax.random.PRNGKey(0),
                           (1, 32, 32, 3), optax.adam(1e-3))
step = jax.jit(train_step)
batch = {"image": jnp.ones((128, 32, 32, 3)), "label": jnp.zeros((128,), jnp.int32)}
for i in range(8):
  if i == 3:
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  state, m = step(state, batch)
  jax.block_until_ready(m)
print(status.keep_freed_memory, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_enable_keeps_freed_memory_so_steps_stop_faulting_pages_in(tmp_path):
  on_applied, on = _run(FAULTS.replace("sys.argv[1]", "'on'"), tmp_path)[-1].split()
  off_applied, off = _run(FAULTS.replace("sys.argv[1]", "'off'"), tmp_path)[-1].split()
  assert (on_applied, off_applied) == ("True", "False")
  assert float(on) < 0.5 * float(off), (on, off)  # page faults per step
