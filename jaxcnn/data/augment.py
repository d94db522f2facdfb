"""Data augmentation as pure, keyed, batched JAX functions (they run inside jit, on the accelerator).

Every function takes ``(key, images)`` with ``images: [B, H, W, C]`` (uint8 or float) and returns
an array of the same shape and dtype. Each example draws its own randomness from ``key``; the same
key gives the same output. Labels are never touched (none of these change the class).

The loaders call the composed augmentation as ``augment(key, images, index, epoch, rows)``:
``index: int32 [B]`` is each example's position in the split and ``epoch`` the epoch number, for
augmentations that depend on them (:func:`alternating_flip`). A custom callable may take
``(key, images)`` or ``(key, images, index, epoch)`` (recognised by its ``index`` and ``epoch``
parameter names), and ``rows`` too.

``rows=(start, total)`` says that ``images`` are rows ``[start, start + B)`` of a batch of
``total`` examples (one process's share of a global batch): every random op then draws for all
``total`` examples from ``key`` and keeps its own rows, so the result is exactly those rows of
the whole batch augmented at once, and the process augments only its own images. A custom
callable without a ``rows`` parameter gets its images placed into a zero batch of ``total``
rows and returns its own rows of the result (exact for any per-example augmentation, at the cost
of augmenting ``total`` images).

Example:
  >>> import jax, jax.numpy as jnp
  >>> aug = make_augment(('crop', 'flip'))
  >>> out = jax.jit(aug)(jax.random.key(0), jnp.zeros((8, 32, 32, 3), jnp.uint8))
  >>> out.shape, out.dtype
  ((8, 32, 32, 3), dtype('uint8'))
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxcnn import _checks

Augment = Callable[..., jax.Array]  # (key, images[, index, epoch]) -> images

_PAD_MODES = {"constant": "constant", "zero": "constant", "reflect": "reflect", "edge": "edge"}


def _check_images(images: jax.Array, fn: str) -> None:
  _checks.rank(images, 4, "images", where=f"`{fn}`")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
  """An int ``>= 0`` for both H and W, or one per dimension ``(h, w)``."""
  return _checks.int_tuple(value, name, n=2, low=0)


def _rows(images: jax.Array, rows: tuple[int, int] | None) -> tuple[int, int]:
  """``(start, total)`` of ``images`` within their whole batch (``(0, B)`` for ``rows=None``):
  draws are made for ``total`` examples and rows ``[start, start + B)`` are kept."""
  b = images.shape[0]
  if rows is None:
    return 0, b
  start, total = (int(r) for r in rows)
  if start < 0 or start + b > total:
    raise ValueError(f"`rows` (={tuple(rows)!r}) must place the {b} images inside the batch: "
                     f"0 <= start and start + {b} <= total")
  return start, total


def _own(draws: jax.Array, start: int, b: int) -> jax.Array:
  return draws[start:start + b]


def random_crop(key: jax.Array, images: jax.Array, padding: int | Sequence[int] = 4,
                mode: str = "constant", *, rows: tuple[int, int] | None = None) -> jax.Array:
  """Pads by ``padding`` on each side of H and W, then crops a random HxW window per example.

  Args:
    key: a ``jax.random`` key.
    images: ``[B, H, W, C]``, any dtype.
    padding: pixels added on each side (int or ``(pad_h, pad_w)``).
    mode: ``'constant'`` (zeros; alias ``'zero'``), ``'reflect'`` or ``'edge'``.
    rows: ``(start, total)``: ``images`` are these rows of a larger batch (module docstring).

  Returns:
    ``[B, H, W, C]``, same dtype: each example is a translation of its padded image by
    ``(dy, dx)`` in ``[0, 2 * pad]``.

  Example:
    >>> random_crop(jax.random.key(0), jnp.ones((2, 8, 8, 1)), padding=2).shape
    (2, 8, 8, 1)
  """
  _check_images(images, "random_crop")
  _checks.choice(mode, "mode", sorted(_PAD_MODES))
  ph, pw = _pair(padding, "padding")
  b, h, w, c = images.shape
  if mode == "reflect" and (ph >= h or pw >= w):
    raise ValueError(f"reflect `padding` (={padding}) must be smaller than the image ({h}x{w})")
  start, total = _rows(images, rows)
  padded = jnp.pad(images, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode=_PAD_MODES[mode])
  ky, kx = jax.random.split(key)
  dy = _own(jax.random.randint(ky, (total,), 0, 2 * ph + 1), start, b)
  dx = _own(jax.random.randint(kx, (total,), 0, 2 * pw + 1), start, b)
  crop = lambda img, y, x: jax.lax.dynamic_slice(img, (y, x, 0), (h, w, c))
  return jax.vmap(crop)(padded, dy, dx)


def random_translate(key: jax.Array, images: jax.Array, max_shift: int | Sequence[int] = 4,
                     mode: str = "constant", *, rows: tuple[int, int] | None = None) -> jax.Array:
  """Shifts each example by a random integer ``(dy, dx)`` in ``[-max_shift, max_shift]``.

  Uncovered pixels are filled per ``mode`` (zeros by default). This is exactly
  :func:`random_crop` with ``padding=max_shift``; kept as its own name for readable configs.

  Example:
    >>> random_translate(jax.random.key(0), jnp.ones((2, 8, 8, 1)), max_shift=1).shape
    (2, 8, 8, 1)
  """
  return random_crop(key, images, padding=max_shift, mode=mode, rows=rows)


def random_flip(key: jax.Array, images: jax.Array, prob: float = 0.5, *,
                rows: tuple[int, int] | None = None) -> jax.Array:
  """Mirrors each example left-right (along W) with probability ``prob``.

  Example:
    >>> random_flip(jax.random.key(0), jnp.ones((2, 8, 8, 3))).shape
    (2, 8, 8, 3)
  """
  _check_images(images, "random_flip")
  start, total = _rows(images, rows)
  flip = _own(jax.random.bernoulli(key, prob, (total,)), start, images.shape[0])
  return jnp.where(flip.reshape(-1, 1, 1, 1), images[:, :, ::-1, :], images)


def cutout(key: jax.Array, images: jax.Array, size: int | Sequence[int] = 8,
           fill: float = 0, *, rows: tuple[int, int] | None = None) -> jax.Array:
  """Sets a ``size``-square patch at a random centre of each example to ``fill`` (DeVries 2017).

  The centre is uniform over the image, so the patch may be clipped by the border (the original
  recipe).

  Example:
    >>> out = cutout(jax.random.key(0), jnp.ones((2, 8, 8, 1)), size=4)
    >>> bool((out == 0).any())
    True
  """
  _check_images(images, "cutout")
  sh, sw = _pair(size, "size")
  b, h, w, _ = images.shape
  start, total = _rows(images, rows)
  ky, kx = jax.random.split(key)
  cy = _own(jax.random.randint(ky, (total, 1, 1, 1), 0, h), start, b)
  cx = _own(jax.random.randint(kx, (total, 1, 1, 1), 0, w), start, b)
  ys = jnp.arange(h).reshape(1, h, 1, 1)
  xs = jnp.arange(w).reshape(1, 1, w, 1)
  y0, x0 = cy - sh // 2, cx - sw // 2
  inside = (ys >= y0) & (ys < y0 + sh) & (xs >= x0) & (xs < x0 + sw)
  return jnp.where(inside, jnp.asarray(fill, images.dtype), images)


def alternating_flip(key: jax.Array, images: jax.Array, index: jax.Array, epoch: jax.Array,
                     seed: int = 0) -> jax.Array:
  """Derandomised flip: epoch 0 mirrors a random half of the examples, every later epoch the
  complement of the epoch before (airbench's alternating flip).

  Example ``i`` is mirrored in epoch ``e`` iff ``bernoulli(fold_in(key(seed), i)) XOR (e odd)``:
  each image is seen exactly once mirrored and once not in every two consecutive epochs, and
  the choice is a pure function of ``(seed, index, epoch)`` (so resume is exact). ``key`` is
  unused; the loaders bind ``seed`` to their data seed.

  Args:
    images: ``[B, H, W, C]``; index: ``int [B]`` positions in the split; epoch: int scalar.

  Example:
    >>> x = jnp.arange(8.).reshape(2, 1, 4, 1)
    >>> a = alternating_flip(None, x, jnp.arange(2), 0)
    >>> b = alternating_flip(None, x, jnp.arange(2), 1)
    >>> bool(jnp.all((a == x) != (b == x)))
    True
  """
  del key
  _check_images(images, "alternating_flip")
  if index is None or epoch is None:
    raise ValueError("`alternating_flip` needs the examples' `index` and the `epoch`; call the "
                     "augmentation as augment(key, images, index, epoch)")
  root = jax.random.key(seed)
  first = jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(root, i)))(
      jnp.asarray(index, jnp.int32))
  flip = jnp.logical_xor(first, jnp.asarray(epoch) % 2 == 1)
  return jnp.where(flip.reshape(-1, 1, 1, 1), images[:, :, ::-1, :], images)


def identity(key: jax.Array, images: jax.Array, *,
             rows: tuple[int, int] | None = None) -> jax.Array:
  """No augmentation (for evaluation)."""
  del key, rows
  return images


AUGMENTATIONS: dict[str, Callable[..., jax.Array]] = {
    "random_crop": random_crop,
    "crop": random_crop,
    "random_flip": random_flip,
    "flip": random_flip,
    "cutout": cutout,
    "random_translate": random_translate,
    "translate": random_translate,
    "alternating_flip": alternating_flip,
}

# Ops called with (key, images, index, epoch) and given the loader's seed. They draw nothing per
# batch (each example's choice comes from its index), so `rows` does not concern them.
_POSITIONAL = {alternating_flip}


def _params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
  try:
    return dict(inspect.signature(fn).parameters)
  except (TypeError, ValueError):
    return None


def _takes_position(fn: Callable[..., Any]) -> bool:
  """Whether ``fn`` takes ``(key, images, index, epoch)``: it names ``index`` and ``epoch``
  parameters (or takes ``*args``); else it is called as ``fn(key, images)``."""
  params = _params(fn)
  if params is None:
    return False
  return ({"index", "epoch"} <= set(params)
          or any(p.kind == p.VAR_POSITIONAL for p in params.values()))


def _takes_rows(fn: Callable[..., Any]) -> bool:
  params = _params(fn)
  return params is not None and ("rows" in params
                                 or any(p.kind == p.VAR_KEYWORD for p in params.values()))


def _in_whole_batch(fn: Callable[..., Any]) -> Augment:
  """``fn(key, images, index, epoch)`` that knows nothing of ``rows``, given them: the images
  (and their indices) are placed at their rows of a zero batch of ``total``, the whole batch is
  augmented, and the own rows are returned (module docstring)."""

  def augment(key, images, index=None, epoch=None, rows=None):
    if rows is None:
      return fn(key, images, index, epoch)
    start, total = _rows(images, rows)
    b = images.shape[0]
    whole = jnp.zeros((total,) + images.shape[1:], images.dtype).at[start:start + b].set(images)
    if index is not None:
      index = jnp.zeros((total,), jnp.asarray(index).dtype).at[start:start + b].set(index)
    return fn(key, whole, index, epoch)[start:start + b]

  return augment


def _with_position(fn: Callable[..., Any]) -> Augment:
  """``fn`` as ``augment(key, images, index=None, epoch=None, rows=None)``."""
  if _takes_position(fn):
    if _takes_rows(fn):
      return fn
    return _in_whole_batch(fn)
  if _takes_rows(fn):
    return lambda key, images, index=None, epoch=None, rows=None: fn(key, images, rows=rows)
  return _in_whole_batch(lambda key, images, index=None, epoch=None: fn(key, images))


def make_augment(spec: Any, *, seed: int = 0) -> Augment:
  """Builds ``fn(key, images, index=None, epoch=None, rows=None) -> images`` from a small spec.

  ``spec`` may be None / empty (identity), a callable (taking ``(key, images)`` or ``(key,
  images, index, epoch)``, and ``rows`` if it wants them: module docstring), a name, a sequence whose
  items are names or ``(name, kwargs)`` pairs, or a mapping ``{name: kwargs}`` (applied in order).
  Names: ``crop``/``random_crop``, ``flip``/``random_flip``, ``cutout``,
  ``translate``/``random_translate``, ``alternating_flip`` (given ``seed`` unless its kwargs
  set one). Each op gets its own key split from the call's key. ``rows``: see the module
  docstring.

  Example:
    >>> aug = make_augment({'crop': {'padding': 4, 'mode': 'reflect'}, 'flip': {},
    ...                     'cutout': {'size': 8}})
    >>> aug(jax.random.key(1), jnp.zeros((4, 32, 32, 3))).shape
    (4, 32, 32, 3)
  """
  if spec is None or (not callable(spec) and len(spec) == 0):
    return _with_position(identity)
  if callable(spec):
    return _with_position(spec)
  if isinstance(spec, str):
    spec = (spec,)
  items = list(spec.items()) if hasattr(spec, "items") else [
      item if isinstance(item, (tuple, list)) else (item, {}) for item in spec]
  ops = []
  for item in items:
    if len(item) != 2:
      raise ValueError(f"augmentation item {item!r} must be a name or a (name, kwargs) pair")
    name, kwargs = item
    _checks.choice(name, "augment", sorted(AUGMENTATIONS))
    fn, kwargs = AUGMENTATIONS[name], dict(kwargs or {})
    if fn in _POSITIONAL:
      kwargs.setdefault("seed", seed)
    op = functools.partial(fn, **kwargs)
    ops.append((lambda k, x, i, e, r, op=op: op(k, x, i, e)) if fn in _POSITIONAL else
               (lambda k, x, i, e, r, op=op: op(k, x, rows=r)))

  def augment(key: jax.Array, images: jax.Array, index: jax.Array | None = None,
              epoch: jax.Array | None = None,
              rows: tuple[int, int] | None = None) -> jax.Array:
    keys = jax.random.split(key, len(ops))
    for k, op in zip(keys, ops):
      images = op(k, images, index, epoch, rows)
    return images

  return augment
