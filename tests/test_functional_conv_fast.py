"""Tests for the tuned convolution (jaxcnn.functional._conv_fast) and its cache (jaxcnn._tuning).

Every formulation must equal the plain ``lax.conv_general_dilated`` path in values, input
gradients and kernel gradients (float32 summation order only); the choice must be a pure
function of the cache; tuning 'off' must give the plain path itself.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from jaxcnn import _tuning
from jaxcnn import functional as F
from jaxcnn.functional import _conv, _conv_fast

RTOL = 2e-6  # float32 sums of a few hundred terms in another order


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path):
  _tuning.set_cache_path(tmp_path / "tuning.json")
  yield tmp_path / "tuning.json"
  _tuning.set_cache_path(None)
  _tuning.set_mode(None)


def assert_close(actual, expected, rtol=RTOL):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  err = np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30)
  assert err <= rtol, f"relative error {err:.3g} > {rtol:g}"


def plain(x, w, spec):
  return lax.conv_general_dilated(
      x, w, spec.stride, spec.pads, rhs_dilation=spec.dilation,
      dimension_numbers=_conv._DIMENSION_NUMBERS[spec.n], feature_group_count=spec.groups)


# (x shape, kernel size, C_out, stride, padding, dilation, groups): 1-D, 2-D, 3-D; strides,
# asymmetric and SAME paddings, dilation, grouped and depthwise.
CASES = [
    ((2, 9, 3), (3,), 4, 1, "VALID", 1, 1),
    ((2, 10, 4), (3,), 6, 2, "SAME", 2, 2),
    ((2, 8, 8, 3), (3, 3), 5, 1, "VALID", 1, 1),
    ((2, 9, 7, 4), (3, 2), 6, (2, 1), ((1, 2), (0, 1)), 1, 1),
    ((2, 9, 9, 4), (3, 3), 8, 1, "SAME", 2, 2),
    ((2, 8, 8, 4), (3, 3), 4, 2, 1, 1, 4),
    ((1, 11, 10, 6), (5, 3), 6, (3, 2), "SAME", (1, 2), 3),
    ((2, 5, 6, 5, 2), (2, 3, 2), 4, (1, 2, 1), "SAME", 1, 2),
]


def make(case, seed=0):
  x_shape, k, c_out, stride, padding, dilation, groups = case
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
  w = jnp.asarray(rng.standard_normal((*k, x_shape[-1] // groups, c_out)), jnp.float32)
  n = len(k)
  kk, s, d, pads, _ = _conv._resolve(x.shape, k, stride, padding, dilation)
  spec = _conv_fast.ConvSpec(n, s, tuple(tuple(p) for p in pads), d, groups, None)
  return x, w, spec


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"x{c[0]}k{c[1]}s{c[3]}p{c[4]}d{c[5]}g{c[6]}")
def test_every_formulation_equals_the_plain_path(case):
  x, w, spec = make(case)
  y_ref, vjp_ref = jax.vjp(lambda x, w: plain(x, w, spec), x, w)
  g = jnp.asarray(np.random.default_rng(1).standard_normal(y_ref.shape), jnp.float32)
  dx_ref, dw_ref = vjp_ref(g)
  # Each part uses its own formulation independently: every formulation in every part, plus
  # one mixed choice, covers them all.
  for fwd, dx, dw in [(f, f, f) for f in _conv_fast.FORMULATIONS] + [("patches", "xla", "patches")]:
    s = spec.with_choice({"fwd": fwd, "dx": dx, "dw": dw})
    y, vjp = jax.vjp(lambda x, w, s=s: _conv_fast.conv_tuned(x, w, s), x, w)
    gx, gw = vjp(g)
    assert_close(y, y_ref)
    assert_close(gx, dx_ref)
    assert_close(gw, dw_ref)


def test_forward_mode_and_second_order_match_the_plain_path():
  x, w, spec = make(CASES[3])
  s = spec.with_choice({"fwd": "patches", "dx": "patches", "dw": "patches"})
  tx, tw = x[::-1] * 0.5, w * 2.0
  y, ty = jax.jvp(lambda x, w: _conv_fast.conv_tuned(x, w, s), (x, w), (tx, tw))
  y_ref, ty_ref = jax.jvp(lambda x, w: plain(x, w, spec), (x, w), (tx, tw))
  assert_close(y, y_ref)
  assert_close(ty, ty_ref)
  hvp = lambda f: jax.jvp(jax.grad(lambda w: (f(x, w) ** 2).sum()), (w,), (tw,))[1]
  assert_close(hvp(lambda x, w: _conv_fast.conv_tuned(x, w, s)), hvp(lambda x, w: plain(x, w, spec)),
               rtol=1e-5)


def test_an_unused_input_gradient_is_not_computed():
  # The first layer's input gradient: symbolic zeros keep the transposed conv out of the program.
  x, w, spec = make(CASES[2])
  s = spec.with_choice({"fwd": "xla", "dx": "xla", "dw": "patches"})
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda w: _conv_fast.conv_tuned(x, w, s).sum()))(w))
  assert jaxpr.count("conv_general_dilated") == 1  # the forward only; dw is a dot_general
  assert "dot_general" in jaxpr


def _write_cache(path, key, entry):
  path.write_text(json.dumps({"version": _tuning.CACHE_VERSION,
                              "hosts": {_tuning.host_key(): {f"conv|{key}": entry}}}))
  _tuning.set_cache_path(path)  # drops what was loaded


def test_the_choice_is_read_from_the_cache_and_never_measured(_isolated_cache, monkeypatch):
  monkeypatch.setattr(_conv_fast, "measure", lambda *a, **k: pytest.fail("measured"))
  x, w, spec = make(CASES[2])
  entry = {"fwd": "patches", "dx": "xla", "dw": "patches", "ms": {}}
  _write_cache(_isolated_cache, _conv_fast.shape_key(x.shape, w.shape, x.dtype, spec), entry)
  for mode in ("on", "cached"):
    _tuning.set_mode(mode)
    chosen = [_conv_fast.choose(x.shape, w.shape, x.dtype, spec) for _ in range(2)]
    assert chosen[0] == chosen[1] == spec.with_choice(entry)
    jaxpr = str(jax.make_jaxpr(lambda x, w: F.conv(x, w))(x, w))
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr  # fwd via patches
  assert_close(F.conv(x, w), plain(x, w, spec))


def test_a_miss_is_measured_once_and_stored(_isolated_cache, monkeypatch):
  calls = []

  def fake_measure(*args, **kwargs):
    calls.append(args)
    return {"fwd": "xla", "dx": "patches", "dw": "patches", "ms": {}}

  monkeypatch.setattr(_conv_fast, "measure", fake_measure)
  _tuning.set_mode("on")
  x, w, spec = make(CASES[4])
  g = jax.jit(jax.grad(lambda x, w: F.conv(x, w, padding="SAME", dilation=2, groups=2).sum(),
                       argnums=(0, 1)))
  y0 = jnp.zeros((1, *x.shape[1:]))
  F.conv(y0, w, padding="SAME", dilation=2, groups=2)  # eager miss: plain path, not measured
  assert not calls
  g(x, w)
  g(x, w)
  F.conv(x, w, padding="SAME", dilation=2, groups=2)  # eager: same key, no new measurement
  assert len(calls) == 1
  stored = json.loads(_isolated_cache.read_text())["hosts"][_tuning.host_key()]
  assert list(stored.values())[0]["dw"] == "patches"
  _tuning.set_mode("cached")  # another process reading the file makes the same choice
  _tuning.set_cache_path(_isolated_cache)
  assert _conv_fast.choose(x.shape, w.shape, x.dtype, spec).dw == "patches"


def test_a_real_measurement_under_jit_stores_timings(_isolated_cache):
  _tuning.set_mode("on")
  x, w, _ = make(CASES[2])
  y = jax.jit(lambda x, w: F.conv(x, w))(x, w)  # measured from inside a trace
  entry = list(json.loads(_isolated_cache.read_text())["hosts"][_tuning.host_key()].values())[0]
  assert {entry[p] for p in ("fwd", "dx", "dw")} <= set(_conv_fast.FORMULATIONS)
  assert set(entry["ms"]) == {"fwd", "dx", "dw"} and entry["ms"]["dw"]["xla"] > 0
  _tuning.set_mode("off")
  assert_close(y, F.conv(x, w))


def test_cached_mode_without_an_entry_and_off_mode_give_the_plain_path(monkeypatch):
  monkeypatch.setattr(_conv_fast, "measure", lambda *a, **k: pytest.fail("measured"))
  x, w, spec = make(CASES[3])
  for mode in ("cached", "off"):
    _tuning.set_mode(mode)
    jaxpr = str(jax.make_jaxpr(lambda x, w: F.conv(x, w, stride=(2, 1), padding=((1, 2), (0, 1))))(x, w))
    assert "custom_jvp" not in jaxpr and jaxpr.count("conv_general_dilated") == 1
    # Exact: the jaxpr above is the plain path's one lax call.
    np.testing.assert_array_equal(
        F.conv(x, w, stride=(2, 1), padding=((1, 2), (0, 1))), plain(x, w, spec))


def test_an_entry_for_another_host_is_not_used(_isolated_cache):
  x, w, spec = make(CASES[2])
  key = f"conv|{_conv_fast.shape_key(x.shape, w.shape, x.dtype, spec)}"
  _isolated_cache.write_text(json.dumps({"version": _tuning.CACHE_VERSION, "hosts": {
      "cpu|another CPU|XLA_FLAGS=": {key: {"fwd": "patches", "dx": "patches", "dw": "patches"}}}}))
  _tuning.set_cache_path(_isolated_cache)
  _tuning.set_mode("cached")
  assert _conv_fast.choose(x.shape, w.shape, x.dtype, spec) is None


def test_bad_mode_is_rejected_naming_the_value(monkeypatch):
  with pytest.raises(ValueError, match=r"tuning mode \(='fast'\) must be one of on, cached, off"):
    _tuning.set_mode("fast")
  monkeypatch.setenv("JAXCNN_TUNING", "sometimes")
  with pytest.raises(ValueError, match=r"`JAXCNN_TUNING` \(='sometimes'\) must be one of"):
    _tuning.get_mode()


def test_bias_add_gradient_is_a_product_and_equals_the_plain_one():
  rng = np.random.default_rng(0)
  y = jnp.asarray(rng.standard_normal((3, 5, 4, 6)), jnp.float32)
  b = jnp.asarray(rng.standard_normal(6), jnp.float32)
  tuned = lambda y, b: jnp.sin(_conv_fast.bias_add(y, b)).sum()
  ref = lambda y, b: jnp.sin(y + b.reshape(1, 1, 1, 6)).sum()
  for got, want in zip(jax.grad(tuned, (0, 1))(y, b), jax.grad(ref, (0, 1))(y, b)):
    assert_close(got, want)
  jaxpr = str(jax.make_jaxpr(jax.grad(tuned, 1))(y, b))
  assert "dot_general" in jaxpr and jaxpr.count("reduce_sum") == 1  # the loss's sum only
  check_grads(_conv_fast.bias_add, (y, b), order=1, modes=["fwd", "rev"])


def test_tuned_conv_layer_with_bias_equals_the_plain_layer(_isolated_cache):
  x, w, spec = make(CASES[2])
  b = jnp.linspace(-1.0, 1.0, w.shape[-1])
  key = _conv_fast.shape_key(x.shape, w.shape, x.dtype, spec)
  _write_cache(_isolated_cache, key, {"fwd": "patches", "dx": "patches", "dw": "patches"})
  loss = lambda x, w, b: (F.relu(F.conv(x, w, b)) ** 2).sum()
  grad = jax.jit(jax.grad(loss, (0, 1, 2)))
  _tuning.set_mode("cached")
  tuned = grad(x, w, b)
  _tuning.set_mode("off")
  jax.clear_caches()
  for got, want in zip(tuned, grad(x, w, b)):
    assert_close(got, want)


def test_measurement_uses_at_most_measure_max_batch_examples(monkeypatch):
  seen = []
  real = _conv_fast._FORMS["xla"]

  def spy(x, w, spec):
    seen.append(x.shape[0])
    return real(x, w, spec)

  monkeypatch.setitem(_conv_fast._FORMS, "xla", spy)
  monkeypatch.setattr(_conv_fast, "MEASURE_MAX_BATCH", 4)
  spec = _conv_fast.ConvSpec(n=2, stride=(1, 1), pads=((1, 1), (1, 1)), dilation=(1, 1),
                             groups=1, precision=None)
  entry = _conv_fast.measure((50, 6, 6, 3), (3, 3, 3, 4), jnp.float32, spec, budget_s=0.01)
  assert entry["batch"] == 4 and set(seen) == {4}
  assert all(entry[p] in _conv_fast.FORMULATIONS for p in _conv_fast.PARTS)
