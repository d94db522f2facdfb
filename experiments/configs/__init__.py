"""Experiment configs for the CLI: each file is a one-line re-export of ``jaxcnn.configs.<name>``.

Run one with ``python -m experiments.train --config experiments/configs/<name>.py --workdir DIR``
and override any key with ``--config.<key>=<value>``. The configs themselves live in
:mod:`jaxcnn.configs` (so they ship with ``pip install``); each file here is exactly::

    from jaxcnn.configs.<name> import __doc__, get_config  # noqa: F401  (re-export; see jaxcnn/configs)

Every config has the keys documented in :mod:`jaxcnn.configs.cifar10_tutorial`.
"""
