"""The recipe registry: :class:`Recipe`, :func:`register`, :func:`from_config`, :func:`hooks`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from jaxcnn import _checks
from jaxcnn.train import config as config_lib


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The hooks a recipe supplies (``None``: the config's default for that part)."""
  tx: Any = None  # an optax transformation or a factory (params, total_steps, steps_per_epoch)
  init_fn: Any = None  # init_fn(model, key, sample_batch) -> variables
  loss_fn: Any = None  # loss_fn(logits, batch) -> [B] losses
  logits_fn: Any = None  # logits_fn(apply, images) -> logits, for evaluation
  augment: Any = None  # a jaxcnn.data.augment.make_augment spec for training


RecipeFactory = Callable[[config_lib.Config], Recipe]
RECIPES: dict[str, RecipeFactory] = {}


def register(name: str) -> Callable[[RecipeFactory], RecipeFactory]:
  """Decorator adding ``factory(config) -> Recipe`` as recipe ``name``."""
  def add(factory: RecipeFactory) -> RecipeFactory:
    if name in RECIPES:
      raise ValueError(f"recipe {name!r} is already registered")
    RECIPES[name] = factory
    return factory
  return add


def from_config(config: Any) -> Recipe:
  """The :class:`Recipe` that ``config.recipe.name`` names (an empty one without a name)."""
  config = config_lib.validate(config)
  name = config.recipe.get("name")
  if not name:
    return Recipe()
  _checks.choice(name, "recipe.name", sorted(RECIPES))
  return RECIPES[name](config)


def hooks(config: Any) -> dict[str, Any]:
  """The keyword arguments of :func:`jaxcnn.train.train_and_evaluate` that ``config``'s recipe
  supplies (``{}`` without one)."""
  recipe = from_config(config)
  return {f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe)
          if getattr(recipe, f.name) is not None}

