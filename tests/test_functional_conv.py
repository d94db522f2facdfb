"""Tests for the convolutions: conv, conv1d/2d/3d, convolve, patches, conv_via_patches.

References, in float64 numpy: scipy.signal.correlate2d / convolve2d / correlate / convolve,
np.correlate / np.convolve, and a naive loop that implements stride, dilation, explicit padding
and groups straight from the definition. Float32 results must agree to a relative error of 1e-5
(max abs error over max abs value).
"""

import doctest
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from jax import lax
from jax.test_util import check_grads

from jaxcnn import functional as F
from jaxcnn import shapes
from jaxcnn.functional import _conv

RTOL = 1e-5


@pytest.fixture(autouse=True)
def _float32_precision():
  # On GPU/TPU the default float32 conv/matmul precision may use TF32 or bf16 passes; the
  # bounds here are float32 bounds. (On CPU this changes nothing.)
  with jax.default_matmul_precision("highest"):
    yield


def assert_close(actual, expected, rtol=RTOL):
  actual = np.asarray(actual, dtype=np.float64)
  expected = np.asarray(expected, dtype=np.float64)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  scale = max(np.max(np.abs(expected)), 1e-30)
  err = np.max(np.abs(actual - expected)) / scale
  assert err <= rtol, f"relative error {err:.3g} > {rtol:g}"


def rand(rng, shape, dtype=np.float32):
  return rng.standard_normal(shape).astype(dtype)


def naive_conv(x, w, b=None, *, stride, pads, dilation, groups):
  """Cross-correlation from the definition, in float64: the reference for everything else."""
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  n = x.ndim - 2
  stride = shapes.normalize_tuple(stride, n, "stride")
  dilation = shapes.normalize_tuple(dilation, n, "dilation")
  xp = np.pad(x, [(0, 0), *pads, (0, 0)])
  k, c_in_g, c_out = w.shape[:n], w.shape[-2], w.shape[-1]
  c_out_g = c_out // groups
  out = [(xp.shape[1 + i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
  y = np.zeros((x.shape[0], *out, c_out))
  for o in np.ndindex(*out):
    for kk in np.ndindex(*k):
      idx = tuple(o[i] * stride[i] + kk[i] * dilation[i] for i in range(n))
      xv = xp[(slice(None), *idx)]  # [B, C_in]
      for g in range(groups):
        y[(slice(None), *o, slice(g * c_out_g, (g + 1) * c_out_g))] += (
            xv[:, g * c_in_g:(g + 1) * c_in_g] @ w[kk][:, g * c_out_g:(g + 1) * c_out_g])
  if b is not None:
    y += np.asarray(b, np.float64)
  return y


# ----------------------------------------------------------------------------------------------
# Exact, hand-computed values: small integers in and out, so every partial sum is an exact float,
# whatever order the backend sums in.


def test_hand_computed_ones_kernel_on_arange_image():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)  # [[0..3], [4..7], [8..11], [12..15]]
  w = jnp.ones((3, 3, 1, 1))
  # Each output is the sum of a 3x3 window: 0+1+2+4+5+6+8+9+10 = 45, and so on.
  np.testing.assert_array_equal(F.conv(x, w)[0, :, :, 0], [[45, 54], [81, 90]])
  np.testing.assert_array_equal(F.conv(x, w, jnp.array([1.0]))[0, :, :, 0], [[46, 55], [82, 91]])
  np.testing.assert_array_equal(F.conv(x, w, stride=2)[0, :, :, 0], [[45]])
  # SAME pads one zero all round: the corner sees 0+1+4+5 = 10, the next cell 0+1+2+4+5+6.
  np.testing.assert_array_equal(
      F.conv(x, w, padding="SAME")[0, :, :, 0],
      [[10, 18, 24, 18], [27, 45, 54, 39], [51, 81, 90, 63], [42, 66, 72, 50]])
  # Dilation 3 on a 4x4 image: the only window is the four corners, 0 + 3 + 12 + 15.
  np.testing.assert_array_equal(F.conv(x, jnp.ones((2, 2, 1, 1)), dilation=3)[0, :, :, 0], [[30]])
  np.testing.assert_array_equal(F.conv_via_patches(x, w)[0, :, :, 0], [[45, 54], [81, 90]])
  np.testing.assert_array_equal(
      F.patches(x, 3)[0, 1, 0], [4, 5, 6, 8, 9, 10, 12, 13, 14])


def test_hand_computed_convolution_vs_cross_correlation():
  x = jnp.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
  w = jnp.array([1.0, 0.0, -1.0]).reshape(3, 1, 1)
  assert float(F.conv(x, w)[0, 0, 0]) == -2.0      # 1*1 + 2*0 + 3*(-1)
  assert float(F.convolve(x, w)[0, 0, 0]) == 2.0   # kernel flipped: 1*(-1) + 2*0 + 3*1
  assert np.convolve([1, 2, 3], [1, 0, -1], "valid").tolist() == [2]
  assert np.correlate([1, 2, 3], [1, 0, -1], "valid").tolist() == [-2]


def test_grouped_conv_hand_computed():
  # Depthwise (groups == C): each channel is filtered by its own kernel only.
  x = jnp.stack([jnp.arange(4.0), 10 * jnp.ones(4)], axis=-1).reshape(1, 4, 2)
  w = jnp.array([[1.0, 1.0], [1.0, -1.0]]).reshape(2, 1, 2)  # k=2, C_in/g=1, C_out=2
  y = F.conv(x, w, groups=2)
  np.testing.assert_array_equal(y[0, :, 0], [1, 3, 5])  # x0[i] + x0[i+1]
  np.testing.assert_array_equal(y[0, :, 1], [0, 0, 0])  # 10 - 10


def test_module_doctests():
  failures, tried = doctest.testmod(_conv, verbose=False)
  assert tried >= 5 and failures == 0


# ----------------------------------------------------------------------------------------------
# Against scipy and numpy.


@pytest.mark.parametrize("mode,kernel", [
    ("valid", (3, 2)), ("full", (3, 2)), ("same", (3, 5)), ("same", (1, 3))])
def test_conv2d_and_convolve_match_scipy(mode, kernel):
  rng = np.random.default_rng(0)
  x = rand(rng, (2, 7, 8, 3))
  w = rand(rng, (*kernel, 3, 2))
  padding = mode.upper()  # scipy's 'same' is centred: SAME for odd kernels
  y_corr = F.conv2d(x, w, padding=padding)
  y_conv = F.convolve(x, w, padding=padding)
  x64, w64 = x.astype(np.float64), w.astype(np.float64)
  for fn, y in ((scipy.signal.correlate2d, y_corr), (scipy.signal.convolve2d, y_conv)):
    expected = np.stack([
        np.stack([sum(fn(x64[b, :, :, c], w64[:, :, c, o], mode=mode) for c in range(3))
                  for o in range(2)], axis=-1)
        for b in range(2)])
    assert_close(y, expected)


@pytest.mark.parametrize("mode,k", [("valid", 4), ("full", 4), ("same", 3), ("same", 5)])
def test_conv1d_and_convolve_match_numpy(mode, k):
  rng = np.random.default_rng(1)
  x, w = rand(rng, (11,)), rand(rng, (k,))
  x3, w3 = x.reshape(1, 11, 1), w.reshape(k, 1, 1)
  padding = mode.upper()
  # np.correlate is cross-correlation (= conv); np.convolve flips the kernel (= convolve).
  assert_close(F.conv1d(x3, w3, padding=padding)[0, :, 0],
               np.correlate(x.astype(np.float64), w.astype(np.float64), mode))
  assert_close(F.convolve(x3, w3, padding=padding)[0, :, 0],
               np.convolve(x.astype(np.float64), w.astype(np.float64), mode))


@pytest.mark.parametrize("mode,kernel", [("valid", (2, 3, 2)), ("full", (2, 1, 3)),
                                         ("same", (3, 1, 3))])
def test_conv3d_and_convolve_match_scipy(mode, kernel):
  rng = np.random.default_rng(2)
  x = rand(rng, (1, 4, 5, 6, 2))
  w = rand(rng, (*kernel, 2, 3))
  x64, w64 = x.astype(np.float64), w.astype(np.float64)
  for op, fn in ((F.conv3d, scipy.signal.correlate), (F.convolve, scipy.signal.convolve)):
    y = op(x, w, padding=mode.upper())
    expected = np.stack([
        sum(fn(x64[0, ..., c], w64[..., c, o], mode=mode, method="direct") for c in range(2))
        for o in range(3)], axis=-1)[None]
    assert_close(y, expected)


# ----------------------------------------------------------------------------------------------
# Against the naive loop: stride, dilation, explicit padding and groups in 1/2/3-D.

# (x_shape, kernel_size, C_out, stride, padding, dilation, groups)
NAIVE_CASES = [
    ((2, 9, 4), (3,), 6, 1, "VALID", 1, 1),
    ((2, 10, 4), (4,), 4, 2, [(2, 1)], 1, 2),
    ((1, 11, 3), (3,), 3, 3, "same", 2, 3),  # depthwise, lower-case padding
    ((1, 8, 2), (2,), 4, 1, "FULL", 3, 1),
    ((2, 7, 6, 4), (3, 2), 6, 1, "VALID", 1, 2),
    ((1, 8, 9, 3), (3, 3), 4, (2, 1), "SAME", 1, 1),
    ((1, 9, 8, 2), (2, 3), 4, 2, [(1, 0), (2, 3)], (2, 1), 2),
    ((2, 6, 7, 4), (3, 3), 8, (1, 3), 1, 2, 4),
    ((1, 5, 5, 3), (3, 3), 2, 1, "FULL", 1, 1),
    ((1, 5, 6, 7, 2), (2, 3, 2), 3, 1, "VALID", 1, 1),
    ((1, 6, 5, 6, 4), (3, 2, 3), 4, (2, 1, 2), "SAME", (1, 2, 1), 2),
    ((2, 5, 5, 5, 2), (2, 2, 2), 2, 2, [(0, 1), 1, (2, 0)], 1, 1),
]


@pytest.mark.parametrize("case", NAIVE_CASES, ids=lambda c: f"{len(c[0]) - 2}d-{c[3]}-{c[4]}-"
                         f"d{c[5]}-g{c[6]}".replace(" ", ""))
def test_conv_and_conv_via_patches_match_naive_loop(case):
  x_shape, kernel, c_out, stride, padding, dilation, groups = case
  rng = np.random.default_rng(len(x_shape) * 100 + NAIVE_CASES.index(case))
  x = rand(rng, x_shape)
  w = rand(rng, (*kernel, x_shape[-1] // groups, c_out))
  b = rand(rng, (c_out,))
  n = len(kernel)
  pads = shapes.resolve_padding(
      padding, x_shape[1:-1], kernel, shapes.normalize_tuple(stride, n, "stride"),
      shapes.normalize_tuple(dilation, n, "dilation"))
  expected = naive_conv(x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups)
  kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
  y = F.conv(x, w, b, **kwargs)
  assert y.dtype == jnp.float32
  assert y.shape == shapes.conv_output_shape(
      x_shape, kernel, c_out, stride=stride, padding=padding, dilation=dilation)
  assert_close(y, expected)
  assert_close(F.conv_via_patches(x, w, b, **kwargs), expected)
  # convolve == conv with the spatially flipped kernel, with every other argument unchanged.
  w_flipped = w[(slice(None, None, -1),) * n]
  expected_flipped = naive_conv(x, w_flipped, b, stride=stride, pads=pads, dilation=dilation,
                                groups=groups)
  assert_close(F.convolve(x, w, b, **kwargs), expected_flipped)


@pytest.mark.parametrize("x_shape,kernel,stride,padding,dilation", [
    ((2, 9, 3), (3,), 2, "SAME", 1),
    ((1, 7, 8, 3), (3, 2), (2, 3), [(1, 2), (0, 1)], (1, 2)),
    ((1, 4, 5, 4, 2), (2, 2, 3), 1, "FULL", (2, 1, 1)),
])
def test_patches_matmul_kernel_equals_conv(x_shape, kernel, stride, padding, dilation):
  # The contract's identity, spelled out: patches(x, k) @ w.reshape(-1, C_out) == conv(x, w).
  rng = np.random.default_rng(3)
  x = rand(rng, x_shape)
  w = rand(rng, (*kernel, x_shape[-1], 5))
  kwargs = dict(stride=stride, padding=padding, dilation=dilation)
  p = F.patches(x, kernel, **kwargs)
  y = F.conv(x, w, **kwargs)
  assert p.shape == y.shape[:-1] + (int(np.prod(kernel)) * x_shape[-1],)
  assert_close(p @ w.reshape(-1, 5), y)


def test_patches_order_is_kernel_positions_then_channels():
  # Exact on integers: entry (i, j, c) of a 2x3 patch sits at index (i * 3 + j) * C + c.
  x = jnp.arange(1 * 4 * 5 * 2, dtype=jnp.int32).reshape(1, 4, 5, 2)
  p = F.patches(x, (2, 3), stride=(2, 1), padding=[(0, 1), (1, 0)])
  assert p.dtype == jnp.int32 and p.shape == (1, 2, 4, 12)
  xp = np.pad(np.asarray(x), [(0, 0), (0, 1), (1, 0), (0, 0)])
  for oi, oj, i, j, c in itertools.product(range(2), range(4), range(2), range(3), range(2)):
    assert p[0, oi, oj, (i * 3 + j) * 2 + c] == xp[0, 2 * oi + i, oj + j, c]


# ----------------------------------------------------------------------------------------------
# Shapes.


def _shape_sweep():
  cases = []
  for x_shape, kernel in (((2, 9, 3), (3,)), ((1, 7, 8, 3), (3, 2)), ((1, 5, 6, 4, 2), (2, 3, 1))):
    n = len(kernel)
    paddings = ["VALID", "SAME", "FULL", 1, [(0, 2)] * n]
    for stride, padding, dilation in itertools.product((1, 2, 3), paddings, (1, 2)):
      cases.append((x_shape, kernel, stride, padding, dilation))
  return cases


def test_predicted_shape_equals_actual_shape_over_a_sweep():
  # eval_shape traces without compiling, so the sweep is cheap; the naive-loop tests above
  # check the same agreement on computed outputs.
  checked = 0
  for x_shape, kernel, stride, padding, dilation in _shape_sweep():
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    w = jax.ShapeDtypeStruct((*kernel, x_shape[-1], 4), jnp.float32)
    try:
      expected = shapes.conv_output_shape(x_shape, kernel, 4, **kwargs)
    except ValueError:
      with pytest.raises(ValueError, match="larger than the padded input"):
        jax.eval_shape(functools.partial(F.conv, **kwargs), x, w)
      continue
    for fn in (F.conv, F.convolve, F.conv_via_patches):
      assert jax.eval_shape(functools.partial(fn, **kwargs), x, w).shape == expected, (fn, kwargs)
    p = jax.eval_shape(functools.partial(F.patches, kernel_size=kernel, **kwargs), x)
    assert p.shape == expected[:-1] + (int(np.prod(kernel)) * x_shape[-1],)
    checked += 1
  assert checked > 70


def test_conv_nd_aliases():
  rng = np.random.default_rng(4)
  for op, x_shape in ((F.conv1d, (1, 5, 2)), (F.conv2d, (1, 5, 4, 2)), (F.conv3d, (1, 3, 4, 3, 2))):
    x = rand(rng, x_shape)
    w = rand(rng, (2,) * (len(x_shape) - 2) + (2, 3))
    np.testing.assert_array_equal(op(x, w, stride=2, padding="SAME"),  # an alias: one call
                                  F.conv(x, w, stride=2, padding="SAME"))
  with pytest.raises(ValueError, match=r"`conv2d` expects `x` of shape \[B, H, W, C\], got "
                                       r"shape \(1, 5, 2\)"):
    F.conv2d(jnp.ones((1, 5, 2)), jnp.ones((2, 2, 1)))
  with pytest.raises(ValueError, match=r"`conv1d`.*\(1, 5, 4, 2\)"):
    F.conv1d(jnp.ones((1, 5, 4, 2)), jnp.ones((2, 2, 2, 1)))
  with pytest.raises(ValueError, match=r"`conv3d`.*\(1, 5, 4, 2\)"):
    F.conv3d(jnp.ones((1, 5, 4, 2)), jnp.ones((2, 2, 2, 1)))


# ----------------------------------------------------------------------------------------------
# Dtypes, precision, jit.


def test_dtypes_and_bias_added_in_output_dtype():
  x = jnp.ones((1, 4, 4, 2), jnp.bfloat16)
  w = jnp.ones((3, 3, 2, 3), jnp.bfloat16)
  y = F.conv(x, w, jnp.ones((3,), jnp.float32))
  assert y.dtype == jnp.bfloat16
  # 18 products of ones plus a bias of 1: integers up to 19, exact in bfloat16.
  np.testing.assert_array_equal(np.asarray(y, np.float32), np.full((1, 2, 2, 3), 19.0))
  assert F.conv(x, w.astype(jnp.float32)).dtype == jnp.float32  # promoted, not an error
  assert F.conv_via_patches(x, w, jnp.ones((3,), jnp.float32)).dtype == jnp.bfloat16


def test_precision_passes_through():
  x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 3))
  for fn in (F.conv, F.conv_via_patches):
    jaxpr = str(jax.make_jaxpr(functools.partial(fn, precision=lax.Precision.HIGHEST))(x, w))
    assert "HIGHEST" in jaxpr, jaxpr


def test_jit_second_call_does_not_recompile():
  traces = []

  @functools.partial(jax.jit, static_argnames=("stride", "padding", "groups"))
  def f(x, w, b, stride, padding, groups):
    traces.append(None)  # runs only while tracing
    return F.conv(x, w, b, stride=stride, padding=padding, groups=groups)

  rng = np.random.default_rng(5)
  x, w, b = rand(rng, (2, 6, 6, 4)), rand(rng, (3, 3, 2, 4)), rand(rng, (4,))
  kwargs = dict(stride=2, padding="SAME", groups=2)
  y1 = f(x, w, b, **kwargs)
  y2 = f(x + 1, w * 2, b, **kwargs)
  assert len(traces) == 1
  assert_close(y1, F.conv(x, w, b, **kwargs))
  assert_close(y2, F.conv(x + 1, w * 2, b, **kwargs))
  f(x[:1], w, b, **kwargs)  # a new shape does retrace: the counter is live
  assert len(traces) == 2


# ----------------------------------------------------------------------------------------------
# Gradients (float64, so finite differences are accurate).


@pytest.mark.parametrize("fn,x_shape,kernel,c_out,kwargs,order", [
    (F.conv, (2, 5, 6, 4), (3, 2), 4,
     dict(stride=2, padding="SAME", dilation=(1, 2), groups=2), 2),
    (F.conv, (2, 7, 2), (3,), 3, dict(stride=2, padding=[(1, 2)], dilation=2), 1),
    (F.conv, (1, 4, 4, 5, 2), (2, 2, 3), 2, dict(stride=(1, 2, 1), padding="FULL", groups=2), 1),
    (F.convolve, (1, 5, 5, 2), (2, 3), 3, dict(stride=(2, 1), padding=1), 1),
    (F.conv_via_patches, (1, 5, 6, 4), (3, 3), 2, dict(stride=2, padding="SAME", groups=2), 1),
])
def test_gradients(fn, x_shape, kernel, c_out, kwargs, order):
  rng = np.random.default_rng(6)
  groups = kwargs.get("groups", 1)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.standard_normal(x_shape))
    w = jnp.asarray(rng.standard_normal((*kernel, x_shape[-1] // groups, c_out)))
    b = jnp.asarray(rng.standard_normal((c_out,)))
    assert x.dtype == jnp.float64
    # One jit per case: compiling the whole function once is far cheaper than op-by-op.
    check_grads(jax.jit(functools.partial(fn, **kwargs)), (x, w, b), order=order, modes=["rev"])


# ----------------------------------------------------------------------------------------------
# Bad arguments: ValueError naming the bad value.

_X = np.zeros((1, 4, 4, 3), np.float32)
_W = np.zeros((3, 3, 3, 4), np.float32)

BAD_CALLS = [
    ("x rank 2", lambda: F.conv(np.zeros((4, 3)), _W),
     r"`x` must be \[B, W, C\], \[B, H, W, C\] or \[B, D, H, W, C\], got shape \(4, 3\)"),
    ("x rank 6", lambda: F.conv(np.zeros((1, 2, 2, 2, 2, 3)), _W),
     r"got shape \(1, 2, 2, 2, 2, 3\)"),
    ("w rank", lambda: F.conv(_X, np.zeros((3, 3, 4))), r"`w` must have rank 4.*\(3, 3, 4\)"),
    ("channel mismatch", lambda: F.conv(_X, np.zeros((3, 3, 2, 4))),
     r"`w.shape\[-2\]` \(=2\) times `groups` \(=1\) must equal .*`x.shape\[-1\]` \(=3\)"),
    ("groups not dividing C_in", lambda: F.conv(_X, np.zeros((3, 3, 1, 4)), groups=2),
     r"`in_channels` \(=3\) must be divisible by `groups` \(=2\)"),
    ("groups not dividing C_out",
     lambda: F.conv(np.zeros((1, 4, 4, 4)), np.zeros((3, 3, 2, 3)), groups=2),
     r"`out_channels` \(=w.shape\[-1\]=3\) must be divisible by `groups` \(=2\)"),
    ("groups 0", lambda: F.conv(_X, _W, groups=0), r"`groups` \(=0\)"),
    ("stride 0", lambda: F.conv(_X, _W, stride=0), r"`stride` \(=0\) must be >= 1"),
    ("stride -1", lambda: F.conv(_X, _W, stride=(1, -1)), r"`stride` \(=\(1, -1\)\) must be >= 1"),
    ("stride length", lambda: F.conv(_X, _W, stride=(1, 2, 1)), r"`stride` \(=\(1, 2, 1\)\)"),
    ("dilation 0", lambda: F.conv(_X, _W, dilation=0), r"`dilation` \(=0\) must be >= 1"),
    ("unknown padding", lambda: F.conv(_X, _W, padding="HALF"), r"unknown padding 'HALF'"),
    ("negative padding", lambda: F.conv(_X, _W, padding=-1), r"padding \(=-1\) must be >= 0"),
    ("window too large", lambda: F.conv(_X, np.zeros((5, 3, 3, 4))),
     r"kernel of size 5 is larger than the padded input 4 .*spatial dimension 0"),
    ("dilated window too large", lambda: F.conv(_X, _W, dilation=(1, 2)),
     r"kernel of size 3 \(dilated span 5\) is larger than the padded input 4"),
    ("bias shape", lambda: F.conv(_X, _W, np.zeros((3,))), r"`b` must have shape \(4,\).*\(3,\)"),
    ("bias rank", lambda: F.conv(_X, _W, np.zeros((1, 4))), r"`b` must have shape.*\(1, 4\)"),
    ("convolve w rank", lambda: F.convolve(_X, np.zeros((3, 3))), r"`w` must have rank 4"),
    ("convolve channels", lambda: F.convolve(_X, np.zeros((3, 3, 1, 4))), r"\(=1\).*\(=3\)"),
    ("patches rank", lambda: F.patches(np.zeros((4, 4)), 3), r"got shape \(4, 4\)"),
    ("patches window", lambda: F.patches(_X, 5, padding=[(0, 0), (1, 0)]),
     r"kernel of size 5 is larger than the padded input 4"),
    ("patches stride", lambda: F.patches(_X, 3, stride=0), r"`stride` \(=0\)"),
    ("patches kernel", lambda: F.patches(_X, (3, 0)), r"`kernel_size` \(=\(3, 0\)\)"),
    ("via patches channels", lambda: F.conv_via_patches(_X, np.zeros((3, 3, 2, 4))),
     r"\(=2\).*\(=3\)"),
    ("via patches padding", lambda: F.conv_via_patches(_X, _W, padding="half"),
     r"unknown padding 'half'"),
]


@pytest.mark.parametrize("call,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise_value_error_naming_the_value(call, match):
  with pytest.raises(ValueError, match=match):
    call()
