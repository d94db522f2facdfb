import os
import subprocess
import sys

import pytest

from jaxcnn import xla_flags


def test_flags_only_for_the_jaxlib_versions_and_vendors_they_were_measured_on():
  for vendor in ("AuthenticAMD", "GenuineIntel"):
    assert xla_flags.recommended_cpu_flags("0.10.2", vendor) == (xla_flags.YNNPACK_OFF,)
  assert xla_flags.recommended_cpu_flags("0.99.0", "GenuineIntel") == ()
  assert xla_flags.recommended_cpu_flags("0.10.2", "ARM") == ()


def test_refuses_once_backends_run():
  import jax
  jax.devices()  # conftest's process has started its backends
  with pytest.raises(RuntimeError, match="before JAX's first computation"):
    xla_flags.apply_recommended_cpu_flags()


def _run(code, **env_overrides):
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "JAXCNN_XLA_FLAGS", "JAXCNN_COMPILATION_CACHE")}
  env.update(env_overrides)
  return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        check=True).stdout.splitlines()


def test_import_applies_the_flags_and_a_user_setting_wins(tmp_path):
  code = ("import os, jaxcnn; from jaxcnn import xla_flags; print(xla_flags.APPLIED_AT_IMPORT);"
          "print(os.environ.get('XLA_FLAGS', ''))")
  expected = xla_flags.recommended_cpu_flags()
  out = _run(code, JAXCNN_CACHE_DIR=str(tmp_path))
  assert out == [repr(expected), " ".join(expected)]
  user = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"
  assert _run(code, XLA_FLAGS=user, JAXCNN_CACHE_DIR=str(tmp_path)) == ["()", user]
  assert _run(code, JAXCNN_XLA_FLAGS="0", JAXCNN_CACHE_DIR=str(tmp_path)) == ["()", ""]


def test_import_after_jax_started_changes_nothing():
  code = ("import os, jax; jax.devices(); import jaxcnn; from jaxcnn import xla_flags;"
          "print(xla_flags.APPLIED_AT_IMPORT); print(os.environ.get('XLA_FLAGS', ''))")
  assert _run(code, JAXCNN_COMPILATION_CACHE="0") == ["()", ""]


def test_explicit_application_still_works_for_the_cli():
  code = ("from jaxcnn import xla_flags; import os; print(xla_flags.apply_recommended_cpu_flags());"
          "print(os.environ.get('XLA_FLAGS', ''))")  # unset where no flag applies (jaxlib < 0.10)
  expected = xla_flags.recommended_cpu_flags()
  # With the import-time application switched off, the CLI's explicit call adds them.
  assert _run(code, JAXCNN_XLA_FLAGS="0", JAXCNN_COMPILATION_CACHE="0") == [
      repr(expected), " ".join(expected)]


def test_compilation_cache_is_switched_on_at_import_unless_opted_out_or_set(tmp_path):
  code = ("import jax, jaxcnn; print(jax.config.jax_compilation_cache_dir);"
          "print(jax.config.jax_persistent_cache_min_compile_time_secs)")
  assert _run(code, JAXCNN_CACHE_DIR=str(tmp_path)) == [
      str(tmp_path / "xla"), str(xla_flags.CACHE_MIN_COMPILE_SECONDS)]
  assert _run(code, JAXCNN_COMPILATION_CACHE="0")[0] == "None"
  mine = ("import jax; jax.config.update('jax_compilation_cache_dir', '/tmp/mine');"
          "import jaxcnn; print(jax.config.jax_compilation_cache_dir)")
  assert _run(mine) == ["/tmp/mine"]


def test_the_cli_opt_out_removes_what_the_import_added(tmp_path):
  code = ("import os, jaxcnn; from jaxcnn import xla_flags; print(xla_flags.remove_import_flags());"
          "print(repr(os.environ.get('XLA_FLAGS', '')))")
  expected = xla_flags.recommended_cpu_flags()
  assert _run(code, JAXCNN_CACHE_DIR=str(tmp_path)) == [repr(expected), "''"]
  user = "--xla_cpu_multi_thread_eigen=false"
  assert _run(code, XLA_FLAGS=user, JAXCNN_CACHE_DIR=str(tmp_path)) == [
      repr(expected), repr(user)]
