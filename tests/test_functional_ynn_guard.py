"""The YNNPACK bfloat16 miscompilation of XLA CPU, in plain JAX, and jaxcnn's guard against it.

The upstream bug (jaxcnn.functional._ynn_guard): on XLA CPU, jaxlib 0.11.2-0.12.1, a jitted
bfloat16 fusion that ends in a reduction and uses one broadcast constant twice (two ReLUs'
zero) returns NaN / inf / ~3e38 once the broadcast has 4096 elements. The reproductions below
use no jaxcnn code; they are expected to fail exactly where ``jaxlib_affected()`` says (strict:
the day a jaxlib fixes it they pass, the xfail turns into a failure, and
``_ynn_guard.AFFECTED_JAXLIB`` gets its end). Elsewhere they must give the right numbers; where
``XLA_FLAGS`` chooses the YNNPACK fusion types, an affected jaxlib skips them.
"""

import doctest
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxcnn import functional as F
from jaxcnn.functional import _conv_fast, _ynn_guard

BUGGY_HERE = _ynn_guard.jaxlib_affected() and jax.default_backend() == "cpu"
# XLA_FLAGS that choose the YNNPACK fusion types (e.g. none) decide whether the bug can show.
FUSIONS_SET = "--xla_cpu_experimental_ynn_fusion_type" in os.environ.get("XLA_FLAGS", "")


def upstream_bug(test):
  test = pytest.mark.xfail(
      BUGGY_HERE, strict=True,
      reason="XLA CPU (YNNPACK fusion) miscompiles this bfloat16 program on this jaxlib")(test)
  return pytest.mark.skipif(
      BUGGY_HERE and FUSIONS_SET,
      reason="XLA_FLAGS sets --xla_cpu_experimental_ynn_fusion_type")(test)


BF16 = jnp.bfloat16


def _ints(shape, lo, hi, seed):
  """Small integers: exact in bfloat16, so every sum below is exact in float32."""
  return np.random.default_rng(seed).integers(lo, hi + 1, shape).astype(np.float32)


def _relu(a):
  return np.maximum(a, 0)


def _conv_same_3x3(x, w):
  """Naive numpy reference: 3x3 cross-correlation, padding 1, NHWC / HWIO."""
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, wd = x.shape[1:3]
  return sum(np.einsum("bhwc,co->bhwo", xp[:, i:i + h, j:j + wd], w[i, j])
             for i in range(3) for j in range(3))


def _bf16(a):
  return np.asarray(jnp.asarray(a, BF16).astype(jnp.float32))


# -- the upstream reproductions: plain jax.lax / jnp --------------------------------------
@upstream_bug
def test_upstream_relu_twice_then_reduce_bf16():
  # The smallest form: no convolution at all. One broadcast zero (XLA merges the two ReLUs'),
  # a reduction at the root, 64 x 64 = 4096 elements (63 x 64 is computed correctly).
  x = _ints((64, 64), -3, 3, seed=0)
  f = jax.jit(lambda x: jnp.maximum(jnp.maximum(x, 0) - 1, 0).max(axis=0))
  got = np.asarray(f(jnp.asarray(x, BF16)).astype(jnp.float32))
  np.testing.assert_array_equal(got, _relu(_relu(x) - 1).max(axis=0))


@upstream_bug
def test_upstream_relu_conv_relu_pool_bf16():
  # The conv layer's form (VGG, Wide ResNet): relu -> 3x3 conv C -> C -> relu -> pool.
  x, w = _ints((4, 4, 4, 64), -2, 2, seed=1), _ints((3, 3, 64, 64), -1, 1, seed=2)

  def f(x, w):
    y = lax.conv_general_dilated(jnp.maximum(x, 0), w, (1, 1), ((1, 1), (1, 1)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.maximum(y, 0).max(axis=(1, 2))

  got = np.asarray(jax.jit(f)(jnp.asarray(x, BF16), jnp.asarray(w, BF16)).astype(jnp.float32))
  want = _bf16(_relu(_conv_same_3x3(_relu(x), w)).max(axis=(1, 2)))
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])
def test_upstream_program_is_right_in_other_dtypes(dtype):
  x = _ints((64, 64), -3, 3, seed=0)
  f = jax.jit(lambda x: jnp.maximum(jnp.maximum(x, 0) - 1, 0).max(axis=0))
  got = np.asarray(f(jnp.asarray(x, dtype)).astype(jnp.float32))
  np.testing.assert_array_equal(got, _relu(_relu(x) - 1).max(axis=0))


# -- the affected versions, in one place ---------------------------------------------------
@pytest.mark.parametrize("version,affected", [
    ("0.7.2", False), ("0.10.2", False), ("0.11.0", False), ("0.11.1", False),
    ("0.11.2", True), ("0.12.0", True), ("0.12.0.1", True), ("0.12.1", True),
    ("0.12.1.dev20260101", True)])
def test_jaxlib_affected_is_the_measured_table(version, affected):
  assert _ynn_guard.jaxlib_affected(version) is affected


def test_module_doctests():
  assert doctest.testmod(_ynn_guard, raise_on_error=False).failed == 0


def test_jaxlib_affected_rejects_an_unreadable_version():
  with pytest.raises(ValueError, match=r"'unknown'"):
    _ynn_guard.jaxlib_affected("unknown")


# -- jaxcnn's guard --------------------------------------------------------------------------
def _barriers(fn, *args):
  return str(jax.make_jaxpr(fn)(*args)).count("optimization_barrier")


@pytest.mark.parametrize("affected", [False, True])
def test_isolate_adds_a_barrier_only_for_bfloat16_where_affected(monkeypatch, affected):
  monkeypatch.setattr(_ynn_guard, "_installed_jaxlib_affected", lambda: affected)
  x16, w16 = jnp.ones((2, 4, 4, 3), BF16), jnp.ones((3, 3, 3, 4), BF16)
  expected = 2 if affected and jax.default_backend() == "cpu" else 0  # operands, result
  assert _barriers(lambda x, w: F.conv(x, w), x16, w16) == expected
  assert _barriers(lambda x, w: F.conv_via_patches(x, w), x16, w16) == expected
  assert _barriers(lambda x, w: F.dense(x, w), jnp.ones((2, 3), BF16),
                   jnp.ones((3, 4), BF16)) == expected
  assert _barriers(lambda x, w: F.conv(x, w), x16.astype(jnp.float32),
                   w16.astype(jnp.float32)) == 0
  assert _barriers(lambda x, w: F.conv(x, w), x16.astype(jnp.float16),
                   w16.astype(jnp.float16)) == 0


def _layer_pattern(product, reduce=jnp.max):
  """relu -> product -> relu -> reduce over the middle axes: the upstream bug's shape."""
  def f(x, w):
    y = product(jax.nn.relu(x), w)
    return reduce(jax.nn.relu(y), axis=tuple(range(1, y.ndim - 1)))
  return f


@pytest.mark.parametrize("name", ["conv", "conv_via_patches"])
def test_conv_in_the_bug_pattern_is_exact_in_bf16(name):
  # Unguarded, F.conv fails this on an affected jaxlib; conv_via_patches (slices, one dot) was
  # not seen to, but its dot is guarded as F.dense's is.
  x, w = _ints((4, 4, 4, 64), -2, 2, seed=1), _ints((3, 3, 64, 64), -1, 1, seed=2)
  op = getattr(F, name)
  f = jax.jit(_layer_pattern(lambda x, w: op(x, w, padding="SAME")))
  got = np.asarray(f(jnp.asarray(x, BF16), jnp.asarray(w, BF16)).astype(jnp.float32))
  np.testing.assert_array_equal(got, _bf16(_relu(_conv_same_3x3(_relu(x), w)).max(axis=(1, 2))))


@pytest.mark.parametrize("fwd", _conv_fast.FORMULATIONS)
def test_tuned_conv_in_the_bug_pattern_is_exact_in_bf16(fwd):
  # The tuned path (jaxcnn.cpu.enable's conv tuning) with either forward formulation.
  spec = _conv_fast.ConvSpec(2, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, None).with_choice(
      {"fwd": fwd, "dx": "xla", "dw": "xla"})
  x, w = _ints((4, 4, 4, 64), -2, 2, seed=1), _ints((3, 3, 64, 64), -1, 1, seed=2)
  f = jax.jit(_layer_pattern(lambda x, w: _conv_fast.conv_tuned(x, w, spec)))
  got = np.asarray(f(jnp.asarray(x, BF16), jnp.asarray(w, BF16)).astype(jnp.float32))
  np.testing.assert_array_equal(got, _bf16(_relu(_conv_same_3x3(_relu(x), w)).max(axis=(1, 2))))


def test_dense_in_the_bug_pattern_is_exact_in_bf16():
  x, w = _ints((64, 64), -2, 2, seed=3), _ints((64, 64), -1, 1, seed=4)
  f = jax.jit(lambda x, w: jax.nn.relu(F.dense(jax.nn.relu(x), w)).max(axis=0))
  got = np.asarray(f(jnp.asarray(x, BF16), jnp.asarray(w, BF16)).astype(jnp.float32))
  np.testing.assert_array_equal(got, _bf16(_relu(_relu(x) @ w)).max(axis=0))


def test_conv_gradient_in_the_bug_pattern_matches_float32():
  # The barrier's derivative is a barrier: the bf16 gradient is the float32 one up to bf16
  # rounding. A sum at the root (a max's ties would differ between the two dtypes).
  rng = np.random.default_rng(5)
  x, w = _bf16(rng.standard_normal((4, 8, 8, 64))), _bf16(rng.standard_normal((3, 3, 64, 64)) / 24)
  loss = _layer_pattern(lambda x, w: F.conv(x, w, padding="SAME"), jnp.sum)
  grad = jax.jit(jax.grad(lambda x, w: loss(x, w).astype(jnp.float32).sum(), argnums=(0, 1)))
  g16 = grad(jnp.asarray(x, BF16), jnp.asarray(w, BF16))
  g32 = grad(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))
  for a, b in zip(g16, g32):
    a = np.asarray(a.astype(jnp.float32))
    assert np.isfinite(a).all()
    assert np.linalg.norm(a - b) <= 0.02 * np.linalg.norm(b)
