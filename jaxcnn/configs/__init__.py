"""Experiment configs, shipped inside the package: ``get_config()`` returns a ``ConfigDict``.

They live here (not only in ``experiments/``, which ``pip install`` does not install) so that a
notebook or a Colab runtime can ``from jaxcnn.configs import cifar10_tutorial`` after
``pip install jaxcnn``. Every config has the keys documented in
:mod:`jaxcnn.configs.cifar10_tutorial`, whose docstring is the reference.

The CLI takes a config *file*; ``experiments/configs/<name>.py`` is a one-line re-export of the
module here (``from jaxcnn.configs.<name> import __doc__, get_config``), so both of these work::

    python -m experiments.train --config experiments/configs/cifar10_tutorial.py --workdir DIR
    python -m experiments.train --config jaxcnn/configs/cifar10_tutorial.py --workdir DIR

Adding a config: write ``jaxcnn/configs/<name>.py`` and the one-line
``experiments/configs/<name>.py`` beside the others.

Example::

    from jaxcnn.configs import cifar10_tutorial
    config = cifar10_tutorial.get_config()
    config.data.source = 'download'  # no TensorFlow needed
"""
