"""jaxcnn: a functional convolutional-network library in JAX/Flax.

Layout is channels-last everywhere: ``[B, W, C]``, ``[B, H, W, C]`` or ``[B, D, H, W, C]``.

Modules, one concern each:
  * :mod:`jaxcnn.functional` — pure JAX ops (conv, pooling, dropout, dense, activations, losses,
    batch norm); no Flax.
  * :mod:`jaxcnn.shapes` — shape and parameter arithmetic, and the model summary.
  * :mod:`jaxcnn.layers` — Flax Linen modules over the functional ops.
  * :mod:`jaxcnn.models` — the course's networks, by name.
  * :mod:`jaxcnn.nnx` — the layers and the models as Flax NNX modules, trained by the same
    engine.
"""

__version__ = "0.1.0"

# XLA CPU flags and the persistent compilation cache, before JAX starts (opt-outs:
# JAXCNN_XLA_FLAGS=0, JAXCNN_COMPILATION_CACHE=0; see jaxcnn.xla_flags).
from jaxcnn import xla_flags as _xla_flags  # noqa: E402

_xla_flags.apply_at_import()
