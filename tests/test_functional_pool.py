"""Pooling ops against naive numpy loops, shape predictions, gradients and errors."""

import doctest
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn import shapes
from jaxcnn.functional import _pool
from jaxcnn.functional._pool import (
    avg_pool, global_avg_pool, global_max_pool, lp_pool, max_pool, sum_pool)

RTOL = 1e-5


def assert_close(actual, expected, rtol=RTOL):
  """float32 relative error <= rtol, measured against the largest reference magnitude."""
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert actual.shape == expected.shape
  scale = max(np.abs(expected[np.isfinite(expected)]).max(initial=0.0), 1e-30)
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def naive_pads(padding, size, window, stride):
  """Padding pairs, written independently of jaxcnn.shapes (TF's SAME: extra cell last)."""
  n = len(size)
  if isinstance(padding, str):
    padding = padding.upper()
  if padding == "VALID":
    return [(0, 0)] * n
  if padding == "SAME":
    pads = []
    for m, k, s in zip(size, window, stride):
      total = max((math.ceil(m / s) - 1) * s + k - m, 0)
      pads.append((total // 2, total - total // 2))
    return pads
  if padding == "FULL":
    return [(k - 1, k - 1) for k in window]
  if isinstance(padding, int):
    return [(padding, padding)] * n
  return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def naive_pool(x, kind, window, stride, padding, *, count_include_pad=True, p=None):
  """Loops over output positions of [B, *spatial, C]; padded cells are NaN-marked."""
  x = np.asarray(x, np.float64)
  n = x.ndim - 2
  window = (window,) * n if isinstance(window, int) else tuple(window)
  stride = window if stride is None else ((stride,) * n if isinstance(stride, int) else stride)
  pads = naive_pads(padding, x.shape[1:-1], window, stride)
  xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=np.nan)
  out_size = [(xp.shape[1 + i] - window[i]) // stride[i] + 1 for i in range(n)]
  batch, channels = x.shape[0], x.shape[-1]
  out = np.empty((batch, *out_size, channels))
  for idx in itertools.product(*map(range, out_size)):
    sl = tuple(slice(i * s, i * s + k) for i, s, k in zip(idx, stride, window))
    win = xp[(slice(None), *sl, slice(None))].reshape(batch, -1, channels)
    real = ~np.isnan(win)
    zeros = np.where(real, win, 0.0)
    if kind == "max":
      v = np.where(real, win, -np.inf).max(axis=1)
    elif kind == "sum":
      v = zeros.sum(axis=1)
    elif kind == "avg":
      # A window with no real cell averages to 0 (documented), not 0/0.
      count = math.prod(window) if count_include_pad else np.maximum(real.sum(axis=1), 1)
      v = zeros.sum(axis=1) / count
    elif kind == "lp":
      v = (np.abs(zeros) ** p).sum(axis=1) ** (1.0 / p)
    out[(slice(None), *idx, slice(None))] = v
  return out


# (input shape, window, stride, padding): 1-D, 2-D and 3-D; VALID, SAME, FULL, ints, pairs.
CONFIGS = [
    ((2, 9, 3), 3, None, "VALID"),
    ((2, 9, 3), 2, 1, "SAME"),
    ((2, 10, 2), 3, 2, 1),
    ((2, 8, 2), 3, 2, [(0, 2)]),
    ((2, 7, 6, 3), 2, None, "VALID"),
    ((2, 7, 6, 3), 3, 2, "same"),
    ((2, 7, 6, 3), (2, 3), (1, 2), [(1, 0), (0, 2)]),
    ((1, 5, 5, 2), 3, 1, "FULL"),
    ((1, 6, 5, 2), (3, 2), None, [1, (2, 1)]),
    ((1, 5, 4, 6, 2), 2, None, "VALID"),
    ((1, 5, 4, 6, 2), (2, 2, 3), (1, 2, 2), "SAME"),
    ((1, 5, 5, 5, 2), 3, 2, 1),
]
KINDS = {
    "max": (lambda x, *a: max_pool(x, *a), dict(kind="max")),
    "sum": (lambda x, *a: sum_pool(x, *a), dict(kind="sum")),
    "avg_incl": (lambda x, *a: avg_pool(x, *a), dict(kind="avg")),
    "avg_excl": (lambda x, *a: avg_pool(x, *a, count_include_pad=False),
                 dict(kind="avg", count_include_pad=False)),
    "lp1": (lambda x, *a: lp_pool(x, 1, *a), dict(kind="lp", p=1)),
    "lp2": (lambda x, *a: lp_pool(x, 2, *a), dict(kind="lp", p=2)),
    "lp3.5": (lambda x, *a: lp_pool(x, 3.5, *a), dict(kind="lp", p=3.5)),
}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_pool_matches_naive_loops(config):
  shape, window, stride, padding = config
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  # Every kind in one program: one compilation per config keeps the file fast.
  actual = jax.jit(lambda x: {k: fn(x, window, stride, padding) for k, (fn, _) in KINDS.items()})(x)
  predicted = shapes.pool_output_shape(shape, window, stride=stride, padding=padding)
  for kind, (_, ref_kwargs) in KINDS.items():
    expected = naive_pool(x, window=window, stride=stride, padding=padding, **ref_kwargs)
    assert actual[kind].dtype == jnp.float32, kind
    assert actual[kind].shape == predicted, kind
    assert_close(actual[kind], expected)


def test_count_include_pad_semantics():
  x = jnp.ones((1, 3, 3, 1))
  incl = avg_pool(x, 2, 1, padding=((0, 1), (0, 1)))[0, :, :, 0]
  excl = avg_pool(x, 2, 1, padding=((0, 1), (0, 1)), count_include_pad=False)[0, :, :, 0]
  # Padded zeros dilute the border averages only when they count.
  np.testing.assert_array_equal(incl, [[1, 1, .5], [1, 1, .5], [.5, .5, .25]])
  np.testing.assert_array_equal(excl, np.ones((3, 3)))
  # Without padding the two agree exactly: both divide the same sums by prod(window).
  y = np.random.default_rng(1).normal(size=(2, 6, 6, 2)).astype(np.float32)
  np.testing.assert_array_equal(avg_pool(y, 3, 1), avg_pool(y, 3, 1, count_include_pad=False))


def test_max_pool_padding_never_wins():
  x = -1.0 - np.random.default_rng(2).uniform(size=(2, 5, 5, 3)).astype(np.float32)
  y = max_pool(x, 3, 1, padding="SAME")
  assert (np.asarray(y) < 0).all()  # a zero from the padding would have won
  assert_close(y, naive_pool(x, "max", 3, 1, "SAME"))
  xi = (-np.arange(1, 26, dtype=np.int32)).reshape(1, 5, 5, 1)
  yi = max_pool(xi, 2, 2, padding="SAME")
  assert yi.dtype == jnp.int32
  np.testing.assert_array_equal(yi, naive_pool(xi, "max", 2, 2, "SAME").astype(np.int32))


def test_avg_pool_of_integers_is_float():
  x = np.arange(16, dtype=np.int32).reshape(1, 4, 4, 1)
  y = avg_pool(x, 2)
  assert jnp.issubdtype(y.dtype, jnp.floating)
  np.testing.assert_array_equal(y[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])  # exact: (4 ints) / 4


def test_lp_pool_p1_is_sum_of_abs():
  x = np.random.default_rng(3).normal(size=(2, 6, 7, 3)).astype(np.float32)
  assert_close(lp_pool(x, 1, 3, 2, "SAME"), sum_pool(np.abs(x), 3, 2, "SAME"))


def test_lp_pool_large_p_approaches_max_abs():
  x = np.random.default_rng(4).normal(size=(2, 8, 8, 3)).astype(np.float32)
  m = np.asarray(max_pool(np.abs(x), 3, 2, "SAME"))
  for p, n in ((50, 9), (500, 9)):
    lp = np.asarray(lp_pool(x, p, 3, 2, "SAME"))
    # max <= ||w||_p <= n^(1/p) max for a window of n cells.
    assert (lp >= m * (1 - 1e-6)).all() and (lp <= m * n ** (1 / p) * (1 + 1e-6)).all()
  assert_close(lp, m, rtol=5e-3)
  np.testing.assert_array_equal(lp_pool(x, float("inf"), 3, 2, "SAME"), m)  # the same reduction


def test_lp_pool_large_p_does_not_overflow():
  # |x|^64 overflows float32 above ~4; the per-window scaling keeps every term in [0, 1].
  rng = np.random.default_rng(5)
  x = (rng.normal(size=(1, 6, 6, 2)) * 100).astype(np.float32)
  x[0, :2, :2, 0] = 0.0  # an all-zero window must give 0, not nan
  x[0, 2:4, 2:4, 1] = 1e-3  # a window of tiny values must not underflow to 0 either
  y = lp_pool(x, 64, 2)
  assert np.isfinite(np.asarray(y)).all()
  assert_close(y, naive_pool(x, "lp", 2, None, "VALID", p=64))
  assert float(y[0, 0, 0, 0]) == 0.0
  assert float(y[0, 1, 1, 1]) > 1e-3


def test_global_pools_match_numpy():
  rng = np.random.default_rng(6)
  for shape in ((2, 7, 3), (2, 5, 4, 3), (2, 3, 4, 5, 3)):
    x = rng.normal(size=shape).astype(np.float32)
    axes = tuple(range(1, x.ndim - 1))
    assert global_avg_pool(x).shape == (2, 3)
    assert_close(global_avg_pool(x), x.astype(np.float64).mean(axis=axes))
    np.testing.assert_array_equal(global_max_pool(x), x.max(axis=axes))  # a max never rounds


def test_predicted_shape_equals_actual_over_sweep():
  # sum_pool and avg_pool(count_include_pad=True) resolve arguments exactly as max_pool does.
  pools = [max_pool, functools.partial(avg_pool, count_include_pad=False),
           functools.partial(lp_pool, p=2)]
  checked = 0
  for spatial in ((7,), (8, 5), (4, 6, 5)):
    shape = (2, *spatial, 3)
    for window, stride, padding in itertools.product(
        (1, 2, 3), (None, 1, 2, 3), ("VALID", "SAME", "FULL", 1, 2)):
      try:
        predicted = shapes.pool_output_shape(shape, window, stride=stride, padding=padding)
      except ValueError:
        with pytest.raises(ValueError):
          max_pool(jnp.zeros(shape), window, stride, padding)
        continue
      for pool in pools:
        actual = jax.eval_shape(lambda x: pool(x, window=window, stride=stride,
                                               padding=padding), jax.ShapeDtypeStruct(shape, jnp.float32))
        assert actual.shape == predicted, (pool, shape, window, stride, padding)
        checked += 1
  assert checked > 300


def test_gradients():
  rng = np.random.default_rng(7)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.normal(size=(1, 5, 5, 2)))
    fns = (lambda x: avg_pool(x, 3, 2, "SAME"),
           lambda x: avg_pool(x, 3, 2, "SAME", count_include_pad=False),
           lambda x: sum_pool(x, (2, 3), 1, 1),
           lambda x: lp_pool(x, 2, 3, 2, "SAME"),
           lambda x: lp_pool(x, 3.5, 2, 1),
           lambda x: lp_pool(x, 1, 2))
    # All in one function (a list of outputs): one compilation per transformation.
    check_grads(jax.jit(lambda x: [f(x) for f in fns]), (x,), order=1, modes=("fwd", "rev"))
    # Max pooling is differentiable away from ties: use well-separated distinct values.
    xm = jnp.asarray(rng.permutation(50).astype(np.float64).reshape(1, 5, 5, 2) / 10)
    check_grads(jax.jit(lambda x: max_pool(x, 3, 2, "SAME")), (xm,), order=1, modes=("fwd", "rev"),
                eps=1e-3)
  # Gradients of an all-zero L^p window are finite (no 0^(1/p - 1)).
  g = jax.grad(lambda x: lp_pool(x, 2, 2).sum())(jnp.zeros((1, 4, 1)))
  assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("pool", [max_pool, avg_pool, sum_pool, functools.partial(lp_pool, p=2)])
def test_errors(pool):
  x = jnp.zeros((1, 4, 4, 1))
  for bad in (jnp.zeros((4, 4)), jnp.zeros((1, 2, 2, 2, 2, 1))):
    with pytest.raises(ValueError, match=r"rank"):
      pool(bad, window=2)
  with pytest.raises(ValueError, match=r"larger than the padded input"):
    pool(x, window=5)
  pool(x, window=5, padding=1)  # fits once padded
  for stride in (0, -1, (1, 0)):
    with pytest.raises(ValueError, match=r"`stride`"):
      pool(x, window=2, stride=stride)
  with pytest.raises(ValueError, match=r"`window`"):
    pool(x, window=0)
  with pytest.raises(ValueError, match=r"'HALF'"):
    pool(x, window=2, padding="HALF")


def test_lp_pool_rejects_p_below_one():
  x = jnp.zeros((1, 4, 4, 1))
  for p in (0.5, 0, -2, float("nan")):
    with pytest.raises(ValueError, match=r"`p`"):
      lp_pool(x, p, 2)


def test_global_pool_rank_errors():
  for fn in (global_avg_pool, global_max_pool):
    with pytest.raises(ValueError, match=r"rank 2"):
      fn(jnp.zeros((2, 3)))


def test_docstring_examples():
  assert doctest.testmod(_pool, raise_on_error=False).failed == 0


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("window,padding", [(2, "VALID"), ((2, 3), "SAME"), (3, ((1, 1), (0, 2)))])
def test_non_overlapping_fast_path_equals_reduce_window_values_and_gradients(window, padding, ties):
  # stride == window takes the reshape path; lax.reduce_window is the independent reference.
  # Its max gradient routes a tie to the first cell in row-major order, as max_pool's does.
  from jax import lax
  from jaxcnn import shapes
  rng = np.random.default_rng(7)
  values = rng.integers(0, 3, 2 * 7 * 8 * 3) if ties else rng.permutation(2 * 7 * 8 * 3)
  x = jnp.asarray(values.reshape(2, 7, 8, 3), jnp.float32)
  w = shapes.normalize_tuple(window, 2, "window")
  _, pads = shapes.spatial_output_size(x.shape[1:3], w, w, padding)

  def reference(x, init, op):
    return lax.reduce_window(x, init, op, (1, *w, 1), (1, *w, 1), ((0, 0), *pads, (0, 0)))

  for fast, init, op in [(max_pool, -jnp.inf, lax.max), (sum_pool, 0.0, lax.add)]:
    # Exact: integer values, so every window sum is exact in any summation order.
    y = fast(x, window, padding=padding)
    np.testing.assert_array_equal(y, reference(x, init, op))
    # A fixed cotangent g: each input cell's gradient is a g (or 0) copied, never a sum, for
    # non-overlapping windows, so the two gradients agree exactly.
    g = jnp.asarray(np.random.default_rng(8).normal(size=y.shape), jnp.float32)
    g_fast = jax.vjp(lambda x: fast(x, window, padding=padding), x)[1](g)[0]
    g_ref = jax.vjp(lambda x: reference(x, init, op), x)[1](g)[0]
    np.testing.assert_array_equal(g_fast, g_ref)


def test_fast_path_keeps_integer_dtypes():
  x = jnp.arange(16, dtype=jnp.int8).reshape(1, 4, 4, 1)
  assert sum_pool(x, 2).dtype == jnp.int8 and max_pool(x, 2).dtype == jnp.int8
  assert max_pool(x, 2)[0, :, :, 0].tolist() == [[5, 7], [13, 15]]


# ------------------------------------------------------------- max-pool gradient: the switches

def naive_max_pool_switches(x, window, stride, padding):
  """For each output position the flat index (into ``x``) of the cell its gradient goes to: the
  first maximum of the window in row-major order (numpy loops). A padded cell never wins; a
  window lying wholly in padding sends its gradient nowhere (index -1)."""
  x = np.asarray(x, np.float64)
  n = x.ndim - 2
  window = (window,) * n if isinstance(window, int) else tuple(window)
  stride = window if stride is None else ((stride,) * n if isinstance(stride, int) else stride)
  pads = naive_pads(padding, x.shape[1:-1], window, stride)
  out_size = [(m + lo + hi - k) // s + 1
              for m, (lo, hi), k, s in zip(x.shape[1:-1], pads, window, stride)]
  switches = np.full((x.shape[0], *out_size, x.shape[-1]), -1, np.int64)
  for b, c in itertools.product(range(x.shape[0]), range(x.shape[-1])):
    for idx in itertools.product(*map(range, out_size)):
      best = -np.inf
      for off in itertools.product(*map(range, window)):  # row-major order
        cell = [i * s + o - lo for i, s, o, (lo, _) in zip(idx, stride, off, pads)]
        if not all(0 <= p < m for p, m in zip(cell, x.shape[1:-1])):
          continue  # padding
        v = x[(b, *cell, c)]
        if switches[(b, *idx, c)] < 0 or v > best:  # strict: a tie keeps the earlier cell
          best = v
          switches[(b, *idx, c)] = np.ravel_multi_index((b, *cell, c), x.shape)
  return switches


def naive_max_pool_grad(x, g, switches):
  """The input gradient of ``sum(max_pool(x) * g)``: each ``g`` added at its switch."""
  switches = switches.ravel()
  grad = np.zeros(np.size(x))
  real = switches >= 0
  np.add.at(grad, switches[real], np.asarray(g, np.float64).ravel()[real])
  return grad.reshape(np.shape(x))


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _max_pool_vjp_and_jvp(x, g, t, window, stride, padding):
  pool = lambda x: max_pool(x, window, stride, padding)
  return jax.vjp(pool, x)[1](g)[0], jax.jvp(pool, (x,), (t,))[1]


def _hashable(padding):
  return tuple(p if isinstance(p, int) else tuple(p) for p in padding) if isinstance(
      padding, list) else padding


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(config):
  shape, window, stride, padding = config
  rng = np.random.default_rng(8)
  x = rng.integers(-1, 2, shape).astype(np.float32)  # three values: ties in most windows
  out = shapes.pool_output_shape(shape, window, stride=stride, padding=padding)
  g = rng.normal(size=out).astype(np.float32)
  t = rng.normal(size=shape).astype(np.float32)
  x_bar, y_dot = _max_pool_vjp_and_jvp(x, g, t, window, stride, _hashable(padding))
  switches = naive_max_pool_switches(x, window, stride, padding)
  # Overlapping windows add float32 cotangents at a shared switch: ulp-scale tolerance.
  assert_close(x_bar, naive_max_pool_grad(x, g, switches), rtol=1e-6)
  # Forward mode routes the same way: each output's tangent is the tangent at its switch.
  np.testing.assert_array_equal(y_dot, np.where(switches >= 0, t.ravel()[switches], 0.0))


def test_max_pool_ties_route_one_cell_not_a_share():
  @jax.jit  # one compilation for the four gradients
  def grads(x, x_global):
    pools = [lambda x: max_pool(x, 2), lambda x: max_pool(x, 2, 2), lambda x: max_pool(x, 3, 1)]
    return ([jax.grad(lambda x: pool(x).sum())(x)[0, :, :, 0] for pool in pools],
            jax.grad(lambda x: global_max_pool(x).sum())(x_global))

  (g2, g2_strided, g3), g_global = grads(jnp.zeros((1, 4, 4, 1)), jnp.zeros((2, 3, 3, 2)))
  one_per_window = [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
  np.testing.assert_array_equal(g2, one_per_window)
  np.testing.assert_array_equal(g2_strided, one_per_window)
  # Overlapping 3x3 / stride 1 windows on a constant map: each sends all to its top-left cell.
  np.testing.assert_array_equal(g3, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(g_global[:, 0, 0], np.ones((2, 2)))
  assert float(g_global.sum()) == 4.0  # one cell per example and channel


def test_global_max_pool_gradient_goes_to_the_first_maximum():
  rng = np.random.default_rng(9)
  xs = [rng.integers(0, 3, shape).astype(np.float32)
        for shape in ((2, 7, 3), (2, 5, 4, 3), (2, 3, 4, 2, 3))]
  g = rng.normal(size=(2, 3)).astype(np.float32)
  x_bars = jax.jit(lambda xs: [jax.vjp(global_max_pool, x)[1](g)[0] for x in xs])(xs)
  for x, x_bar in zip(xs, x_bars):
    switches = naive_max_pool_switches(x, x.shape[1:-1], None, "VALID")  # one window: all
    np.testing.assert_array_equal(x_bar, naive_max_pool_grad(x, g, switches))  # one term each


def test_max_pool_gradient_without_ties_is_jnp_max_and_reduce_window_gradient():
  from jax import lax
  rng = np.random.default_rng(10)
  x = jnp.asarray(rng.permutation(2 * 6 * 6 * 3).reshape(2, 6, 6, 3) / 7, jnp.float32)
  pools = {
      "max_pool 2": lambda x: max_pool(x, 2),
      "jnp.max 2": lambda x: jnp.max(x.reshape(2, 3, 2, 3, 2, 3), axis=(2, 4)),
      "max_pool 3/1": lambda x: max_pool(x, 3, 1, "SAME"),
      "reduce_window 3/1": lambda x: lax.reduce_window(
          x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")}
  g2 = jnp.asarray(rng.normal(size=(2, 3, 3, 3)), jnp.float32)
  g3 = jnp.asarray(rng.normal(size=(2, 6, 6, 3)), jnp.float32)
  x_bar = jax.jit(lambda x: {k: jax.vjp(pool, x)[1](g2 if k.endswith(" 2") else g3)[0]
                             for k, pool in pools.items()})(x)
  # Non-overlapping: every gradient entry is one cotangent copied or 0, so exactly equal.
  np.testing.assert_array_equal(x_bar["max_pool 2"], x_bar["jnp.max 2"])
  # Overlapping: a cell that is the maximum of several windows sums their cotangents, in an
  # order each implementation picks (float32 addition is not associative).
  np.testing.assert_allclose(x_bar["max_pool 3/1"], x_bar["reduce_window 3/1"],
                             rtol=1e-6, atol=1e-6)


def test_lp_pool_inf_gradient_is_the_sign_at_the_switch_of_abs():
  # p=inf is the max of |x| with zero padding: its gradient is sign(x) at each window's switch.
  rng = np.random.default_rng(12)
  x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)  # no zeros: padding never wins
  configs = ((3, 2), (2, None))
  gs = [rng.normal(size=shapes.pool_output_shape(x.shape, w, stride=s, padding="SAME"))
        .astype(np.float32) for w, s in configs]
  x_bars = jax.jit(lambda x: [
      jax.vjp(lambda x: lp_pool(x, float("inf"), w, s, "SAME"), x)[1](g)[0]
      for (w, s), g in zip(configs, gs)])(x)
  for (window, stride), g, x_bar in zip(configs, gs, x_bars):
    switches = naive_max_pool_switches(np.abs(x), window, stride, "SAME")
    assert_close(x_bar, np.sign(x) * naive_max_pool_grad(x, g, switches), rtol=1e-6)


# PyTorch pads symmetrically by at most half the window; its indices are the first maximum.
TORCH_CONFIGS = [
    ((2, 9, 3), 3, 2, 1),
    ((2, 8, 3), 2, None, 0),
    ((2, 7, 6, 3), 2, None, 0),
    ((2, 7, 6, 3), 3, 2, 1),
    ((2, 7, 6, 3), (2, 3), (1, 2), (1, 0)),
    ((1, 5, 4, 6, 2), 2, None, 0),
    ((1, 5, 5, 5, 2), 3, 2, 1),
]


@pytest.mark.parametrize("config", TORCH_CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_max_pool_gradient_matches_pytorch_with_ties(config):
  torch = pytest.importorskip("torch")
  shape, window, stride, padding = config
  n = len(shape) - 2
  rng = np.random.default_rng(11)
  x = rng.integers(-1, 2, shape).astype(np.float32)
  pads = tuple((p, p) for p in ((padding,) * n if isinstance(padding, int) else padding))
  out = shapes.pool_output_shape(shape, window, stride=stride, padding=pads)
  g = rng.normal(size=out).astype(np.float32)
  x_bar, _ = _max_pool_vjp_and_jvp(x, g, np.zeros_like(x), window, stride, pads)
  channels_first, channels_last = (0, n + 1, *range(1, n + 1)), (0, *range(2, n + 2), 1)
  xt = torch.tensor(x.transpose(channels_first), requires_grad=True)
  pool = getattr(torch.nn.functional, f"max_pool{n}d")
  yt = pool(xt, window, stride=window if stride is None else stride, padding=padding)
  yt.backward(torch.tensor(g.transpose(channels_first)))
  np.testing.assert_array_equal(max_pool(x, window, stride, pads),
                                yt.detach().numpy().transpose(channels_last))
  # Overlapping windows add cotangents at a shared cell, in each library's own order.
  np.testing.assert_allclose(x_bar, xt.grad.numpy().transpose(channels_last),
                             rtol=1e-6, atol=1e-6)
