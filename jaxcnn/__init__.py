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
  * :mod:`jaxcnn.cpu` — CPU speed for training, turned on by one call: ``jaxcnn.cpu.enable()``.

Importing jaxcnn (or any of its modules) changes no environment variable, no JAX setting and
no file.
"""

__version__ = "0.1.0"
