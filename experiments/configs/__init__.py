"""Experiment configs: each module's ``get_config()`` returns an ``ml_collections.ConfigDict``.

Run one with ``python -m experiments.train --config experiments/configs/<name>.py --workdir DIR``
and override any key with ``--config.<key>=<value>``. Every config has the keys documented in
:mod:`experiments.configs.cifar10_tutorial`, whose docstring is the reference.
"""
