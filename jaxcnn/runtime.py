"""Where JAX is running, said plainly: the device check every notebook starts with.

On Colab a ``pip install`` that upgrades jax without a matching ``libtpu`` (or a CUDA jaxlib on a
GPU runtime) makes JAX fall back to the CPU with only a warning, and training then runs tens of
times slower with nothing else to show it. :func:`device_report` compares the devices JAX found
with the accelerators the machine has and says so in one line when they disagree.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxcnn.cpu.flags import machine_accelerator


def device_report(print_fn: Callable[[str], None] | None = print) -> str:
  """Prints ``jax.devices()`` and whether they are the machine's accelerator; returns the backend.

  Returns ``jax.default_backend()`` (``'cpu'``, ``'gpu'`` or ``'tpu'``). When the machine has an
  accelerator that JAX is not using, the report says so and how to fix it.

  >>> backend = device_report(print_fn=None)
  >>> backend in ('cpu', 'gpu', 'tpu')
  True
  """
  backend = jax.default_backend()
  devices = jax.devices()
  lines = [f"JAX {jax.__version__} on {backend.upper()}: {len(devices)} device(s): "
           f"{', '.join(sorted({d.device_kind for d in devices}))}"]
  expected = machine_accelerator()
  if expected is not None and backend != expected:
    fix = ("the installed jaxlib has no TPU support: restart the runtime and do not upgrade jax "
           "(jaxcnn works with the jax Colab installs), or pip install 'jax[tpu]'"
           if expected == "tpu" else
           "the installed jaxlib has no CUDA support: pip install 'jax[cuda12]'")
    lines.append(f"WARNING: this machine has a {expected.upper()} but JAX is running on "
                 f"{backend.upper()}; training will be slow. Cause: {fix}.")
  elif backend == "cpu":
    lines.append("Running on CPU (no accelerator found). On Colab: Runtime > Change runtime type "
                 "> TPU or GPU, then run the notebook again.")
  if print_fn is not None:
    for line in lines:
      print_fn(line)
  return backend
