import os
import subprocess
import sys

import pytest

from jaxcnn import xla_flags


def test_flags_only_for_the_jaxlib_versions_they_were_measured_on():
  assert xla_flags.recommended_cpu_flags("0.10.2") == xla_flags.RECOMMENDED_CPU_FLAGS
  assert xla_flags.recommended_cpu_flags("0.99.0") == ()


def test_refuses_once_backends_run():
  import jax
  jax.devices()  # conftest's process has started its backends
  with pytest.raises(RuntimeError, match="before JAX's first computation"):
    xla_flags.apply_recommended_cpu_flags()


def test_applied_in_a_fresh_process_and_user_setting_wins():
  code = ("from jaxcnn import xla_flags; import os; print(xla_flags.apply_recommended_cpu_flags());"
          "print(os.environ.get('XLA_FLAGS', ''))")  # unset where no flag applies (jaxlib < 0.10)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True).stdout.splitlines()
  expected = xla_flags.recommended_cpu_flags()
  assert out[0] == repr(expected) and out[1] == " ".join(expected)
  env["XLA_FLAGS"] = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True).stdout.splitlines()
  assert out == ["()", env["XLA_FLAGS"]]
