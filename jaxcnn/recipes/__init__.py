"""Recipes: published training recipes as values the engine takes, selected by ``recipe.name``.

A recipe turns a validated :class:`~jaxcnn.train.config.Config` (its ``recipe`` mapping holds
the recipe's own settings) into a :class:`Recipe`: the optimiser, loss, evaluation logits,
initialisation and training augmentation that :func:`jaxcnn.train.train_and_evaluate` takes
as its hooks (``train_and_evaluate(config, workdir, **hooks(config))``, what the training CLI
does). Nothing in a recipe re-implements the engine: optimisers come
from :mod:`jaxcnn.train.optim`, test-time augmentation from :func:`jaxcnn.train.tta_logits`,
the loop from :mod:`jaxcnn.train.loop`.

* ``'airbench94'`` (:mod:`jaxcnn.recipes.airbench`): Keller Jordan's CIFAR-10 speed recipe,
  with its timed multi-seed runner (:class:`jaxcnn.recipes.airbench.Speedrun`).

>>> from jaxcnn.configs import speedrun
>>> sorted(hooks(speedrun.get_config('tiny')))
['augment', 'init_fn', 'logits_fn', 'loss_fn', 'tx']
>>> hooks({})  # a config without a recipe: the config's own defaults
{}
"""

from jaxcnn.recipes.base import RECIPES, Recipe, from_config, hooks, register
from jaxcnn.recipes import airbench  # registers 'airbench94'

__all__ = ["RECIPES", "Recipe", "airbench", "from_config", "hooks", "register"]
