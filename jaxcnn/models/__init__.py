"""The course's networks and the landmark CNNs for 32x32 images, by name.

Every model is a Flax Linen module built from :mod:`jaxcnn.layers`, called as
``model.apply(variables, x, train=False)`` on ``x: [B, H, W, C]`` and returning float32 logits
``[B, num_classes]`` whatever the compute ``dtype`` (so losses and metrics are always computed in
float32). Parameters are stored in float32; ``dtype=jnp.bfloat16`` only changes the compute dtype.
A 2-D model given ``[B, H, W]`` (MNIST as ``keras.datasets`` gives it) raises one line naming
the fix ``x[..., None]`` instead of silently running as a 1-D net (:func:`check_image_rank`).

Models are registered by name with :func:`register`; a new architecture is a module class plus a
small factory that accepts ``axis_name`` (the ``pmap`` axis its BatchNorm layers average over)::

    @register('my_net')
    def my_net(*, num_classes: int, dtype, axis_name=None, width: int = 64) -> nn.Module:
      return MyNet(num_classes=num_classes, width=width, axis_name=axis_name, dtype=dtype)

The zoo (each class docstring names its source; parameter counts and MACs per image are in the
manual's model zoo page, counted by :func:`jaxcnn.inspect.summary`):

course
  ``tutorial_cnn``, ``tutorial_cnn_512``, ``mlp``, ``stridenet``
classic
  ``lenet5``, ``alexnet_cifar``, ``vgg11``/``13``/``16``/``19`` (BatchNorm)
residual
  ``resnet20``/``32``/``44``/``56``/``110`` (option A; ``shortcut='B'``), ``cifar_resnet``
  (any depth 6n+2), ``resnet18``, ``preact_resnet18``, ``wide_resnet``, ``resnet9``
small and fast
  ``bn_cnn`` (CPU lessons and engine tests), ``speednet`` (airbench94)

>>> import jax, jax.numpy as jnp
>>> from jaxcnn.models import get_model
>>> model = get_model('tutorial_cnn')
>>> variables = model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
>>> model.apply(variables, jnp.ones((2, 32, 32, 3))).shape
(2, 10)
"""

from jaxcnn.models._registry import (
    MODELS, ImageClassifier, ModelFactory, check_image_rank, get_model, register)
from jaxcnn.models._course import MLP, StrideNet, TutorialCNN  # registers the course nets first
from jaxcnn.models._classic import AlexNetCIFAR, BNCNN, LeNet5, VGG, VGG_CONFIGS
from jaxcnn.models._resnet import (
    BasicBlock, PreActBlock, PreActResNet, ResNet, ResNet9, shortcut_a)
from jaxcnn.models._speednet import (
    ConvGroup, SpeedNet, WhiteningConv, dirac_init, init_whitening, whitening_kernel)

__all__ = [
    "MODELS", "register", "get_model", "ModelFactory", "ImageClassifier", "check_image_rank",
    "TutorialCNN", "MLP", "StrideNet",
    "LeNet5", "AlexNetCIFAR", "VGG", "VGG_CONFIGS", "BNCNN",
    "ResNet", "BasicBlock", "PreActResNet", "PreActBlock", "ResNet9", "shortcut_a",
    "SpeedNet", "ConvGroup", "WhiteningConv", "whitening_kernel", "init_whitening",
    "dirac_init",
]
