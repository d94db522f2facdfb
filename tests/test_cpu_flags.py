"""The XLA CPU flag table (jaxcnn.cpu.flags): which flags for which jaxlib and CPU vendor, and how
they reach ``XLA_FLAGS``."""

import os

import pytest

from jaxcnn.cpu import flags


def test_flags_only_for_the_jaxlib_versions_and_vendors_they_were_measured_on():
  assert flags.recommended("0.10.2", "AuthenticAMD") == ((flags.YNNPACK_OFF,), "0.10.2", None)
  # A vendor without a measured row gets no flags, and says so.
  rec = flags.recommended("0.10.2", "GenuineIntel")
  assert rec.flags == () and "on GenuineIntel (measured: none)" in rec.note
  # jaxlib 0.7.2 does not know the YNNPACK flag (XLA would abort): its row has its own flag.
  assert flags.recommended("0.7.2", "AuthenticAMD").flags == (flags.FUSION_EMITTERS_OFF,)
  assert "--xla_cpu_experimental_ynn_fusion_type" not in str(flags.recommended("0.7.2").flags)


def test_an_unmeasured_jaxlib_gets_the_nearest_row_of_its_minor_version_and_says_so():
  rec = flags.recommended("0.10.5", "AuthenticAMD")
  assert rec.flags == (flags.YNNPACK_OFF,) and rec.measured_on == "0.10.2"
  assert rec.note == "jaxlib 0.10.5 not measured: flags of jaxlib 0.10.2"
  rec = flags.recommended("0.11.0", "AuthenticAMD")
  assert rec.flags == () and rec.measured_on is None
  assert rec.note.startswith("no XLA flags measured for jaxlib 0.11.0 on AuthenticAMD")
  assert "0.7.2, 0.10.2, 0.12.1" in rec.note
  rec = flags.recommended("0.10.2", "ARM")
  assert rec.flags == () and "on ARM" in rec.note


def test_every_row_is_one_jaxlib_version_and_vendor_once():
  keys = [(v, vendor) for v, vendor, _ in flags.FLAG_TABLE]
  assert len(keys) == len(set(keys))
  for version, vendor, fl in flags.FLAG_TABLE:
    assert version.count(".") == 2 and vendor in ("AuthenticAMD", "GenuineIntel")
    assert all(f.startswith("--xla_cpu_") for f in fl)


def test_flags_are_added_to_the_environment_and_a_user_setting_wins(monkeypatch):
  monkeypatch.setattr(flags, "backends_started", lambda: False)
  monkeypatch.setenv("XLA_FLAGS", "")  # (setenv, not delenv: the test's value is undone after)
  assert flags.add_to_environment((flags.YNNPACK_OFF,)) == (flags.YNNPACK_OFF,)
  assert os.environ["XLA_FLAGS"] == flags.YNNPACK_OFF
  user = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"
  monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count=2 {user}")
  extra = "--xla_cpu_multi_thread_eigen=false"
  assert flags.add_to_environment((flags.YNNPACK_OFF, extra)) == (extra,)
  assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", user,
                                             extra]


def test_adding_flags_is_refused_once_backends_run():
  import jax
  jax.devices()  # conftest's process has started its backends
  assert flags.backends_started()
  with pytest.raises(RuntimeError, match="before JAX's first computation"):
    flags.add_to_environment((flags.YNNPACK_OFF,))


def test_host_facts_are_strings():
  assert isinstance(flags.cpu_vendor(), str) and flags.cpu_model()
  assert flags.machine_accelerator() in (None, "tpu", "gpu")
  assert flags.flag_names("--a=1 --b  --c=") == {"--a", "--b", "--c"}
  assert flags.describe(flags.YNNPACK_OFF) == "YNNPACK fusions off"
  assert flags.describe("--xla_cpu_other=1") == "--xla_cpu_other=1"
