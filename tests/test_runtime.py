"""The notebooks' device check says when JAX is not using the machine's accelerator."""

from jaxcnn import runtime


def test_report_names_backend_and_devices():
  lines = []
  assert runtime.device_report(lines.append) == "cpu"
  assert lines[0].startswith("JAX ") and "on CPU: 8 device(s)" in lines[0]


def test_report_warns_when_the_machine_has_a_tpu_that_jax_does_not_use(monkeypatch):
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v5litepod-1")
  lines = []
  assert runtime.device_report(lines.append) == "cpu"
  assert lines[1].startswith("WARNING: this machine has a TPU but JAX is running on CPU")
  assert "jax[tpu]" in lines[1]


def test_report_on_a_plain_cpu_machine_says_how_to_pick_an_accelerator(monkeypatch):
  monkeypatch.setattr(runtime, "machine_accelerator", lambda: None)
  lines = []
  runtime.device_report(lines.append)
  assert "Change runtime type" in lines[1]
