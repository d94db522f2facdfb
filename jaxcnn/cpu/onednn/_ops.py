"""The JAX side of the oneDNN convolutions: FFI calls, batch partitioning, vmap and VJP rules.

One 2-D convolution ``y = act(conv(x, w) + b)`` is a ``jax.custom_vjp`` whose forward pass is
the FFI target ``jaxcnn_onednn_conv_fwd`` (bias and activation fused as oneDNN post-ops) and
whose backward pass multiplies the cotangent by the activation's derivative (an XLA elementwise
op, from the saved output; from the pre-activation for GELU) and calls
``jaxcnn_onednn_conv_bwd_data`` and ``jaxcnn_onednn_conv_bwd_weights``. A gradient that is not
used (the first layer's input gradient) is never computed: the calls have no side effects, so
XLA removes an unused one.

Each of the three calls is

* a ``custom_partitioning`` op: under a ``Mesh`` with the batch sharded, every device runs the
  call on its own examples (the kernel and bias replicated); the kernel and bias gradients are
  summed over the batch's mesh axes (``psum``). A batch that does not divide evenly over its mesh
  axes is gathered and computed whole on every device; a sharding of any other dimension is
  gathered. One device and ``pmap`` lower the call as it is. Inside ``shard_map``, operands that
  vary over its mesh axes keep the XLA path (see ``make_conv``).
* a ``custom_vmap`` op: ``vmap`` over examples folds the mapped axis into the batch (one call);
  a mapped kernel or bias (per-example weights) and per-example kernel gradients use XLA's
  convolution for that call.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_batching import custom_vmap
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxcnn.functional import _core

TARGETS = {
    "fwd": ("jaxcnn_onednn_conv_fwd", "JaxcnnOnednnConvFwd"),
    "bwd_data": ("jaxcnn_onednn_conv_bwd_data", "JaxcnnOnednnConvBwdData"),
    "bwd_weights": ("jaxcnn_onednn_conv_bwd_weights", "JaxcnnOnednnConvBwdWeights"),
}
KINDS = {"fwd": 0, "bwd_data": 1, "bwd_weights": 2}
DTYPES = {np.dtype(jnp.float32): 0, np.dtype(jnp.bfloat16): 1}


def _default(fn: Callable, name: str) -> float:
  return float(inspect.signature(fn).parameters[name].default)


# Activations fused as oneDNN eltwise post-ops: name -> (code in conv.cc, alpha, beta). The
# parameters are those of the jaxcnn.functional function the name stands for.
FUSED: dict[str, tuple[int, float, float]] = {
    "relu": (1, 0.0, 0.0),
    "leaky_relu": (1, _default(_core.leaky_relu, "negative_slope"), 0.0),
    "elu": (2, _default(_core.elu, "alpha"), 0.0),
    "sigmoid": (3, 0.0, 0.0),
    "tanh": (4, 0.0, 0.0),
    "gelu": (5, 0.0, 0.0),
}
# Activations whose derivative is computed from the pre-activation (saved instead of the output).
FROM_PRE_ACTIVATION = ("gelu",)


def fused_name(activation: Callable | None) -> str | None:
  """The name under which ``activation`` (a resolved callable) is fused, or ``None``."""
  for name, fn in _core.ACTIVATIONS.items():
    if fn is activation and name in FUSED:
      return name
  return None


@dataclasses.dataclass(frozen=True)
class Geometry:
  """One convolution's static shape: input ``[*, H, W, C]``, kernel ``[KH, KW, C / G, OC]``."""
  in_hwc: tuple[int, int, int]
  kernel: tuple[int, int, int, int]
  stride: tuple[int, int]
  pads: tuple[tuple[int, int], tuple[int, int]]
  dilation: tuple[int, int]
  groups: int

  @property
  def out_hw(self) -> tuple[int, int]:
    return tuple(
        (i + lo + hi - (k - 1) * d - 1) // s + 1
        for i, (lo, hi), k, d, s in zip(self.in_hwc[:2], self.pads, self.kernel[:2],
                                        self.dilation, self.stride))

  def attrs(self, has_bias: bool = False, act: str | None = None) -> dict[str, Any]:
    """The FFI attributes: ``geom`` (see conv.cc) and the activation's ``alpha``, ``beta``."""
    code, alpha, beta = FUSED[act] if act else (0, 0.0, 0.0)
    (pt, pb), (pl, pr) = self.pads
    geom = (*self.in_hwc, *self.kernel[:2], self.kernel[3], *self.out_hw, *self.stride,
            pt, pb, pl, pr, *self.dilation, self.groups, int(has_bias), code)
    return {"geom": np.asarray(geom, np.int64), "alpha": np.float32(alpha),
            "beta": np.float32(beta)}


# ------------------------------------------------------------------------------ XLA reference
_DN = ("NHWC", "HWIO", "NHWC")


def _xla_conv(x, w, geo: Geometry):
  return lax.conv_general_dilated(x, w, geo.stride, geo.pads, rhs_dilation=geo.dilation,
                                  dimension_numbers=_DN, feature_group_count=geo.groups)


def _xla_fwd(x, w, b, geo: Geometry, has_bias: bool, act: str | None):
  y = _xla_conv(x, w, geo)
  if has_bias:
    y = y + b.reshape(1, 1, 1, -1)
  return _core.ACTIVATIONS[act](y) if act else y


def _xla_bwd_data(dy, w, geo: Geometry):
  x = jax.ShapeDtypeStruct((dy.shape[0], *geo.in_hwc), dy.dtype)
  return jax.linear_transpose(lambda x: _xla_conv(x, w, geo), x)(dy)[0]


def _xla_bwd_weights(x, dy, geo: Geometry):
  w = jax.ShapeDtypeStruct(geo.kernel, x.dtype)
  dw = jax.linear_transpose(lambda w: _xla_conv(x, w, geo), w)(dy)[0]
  return dw, dy.sum((0, 1, 2))


# ------------------------------------------------------------------------------ partitioning
_RULES = {
    "fwd": ("b h w c, kh kw i o, o -> b p q o", (True, False, False)),
    "bwd_data": ("b p q o, kh kw i o -> b h w c", (True, False)),
    "bwd_weights": ("b h w c, b p q o -> kh kw i o, o", (True, True)),
}


def _batch_axes(mesh, arg_shapes):
  """The mesh axes the first operand's batch is sharded over, or ``None`` (replicate)."""
  spec = getattr(arg_shapes[0].sharding, "spec", None)
  if not spec or spec[0] is None:
    return None
  axes = spec[0]
  names = axes if isinstance(axes, tuple) else (axes,)
  if arg_shapes[0].shape[0] % math.prod(mesh.shape[a] for a in names):
    return None
  return axes


def _partitioned(fn: Callable, kind: str) -> Callable:
  """``fn`` as a ``custom_partitioning`` op split along the batch (see the module docstring)."""
  rule, batched = _RULES[kind]
  op = custom_partitioning(fn)

  def shardings(mesh, axes):
    args = tuple(NamedSharding(mesh, P(axes) if bt else P()) for bt in batched)
    if kind == "bwd_weights":
      return args, (NamedSharding(mesh, P()), NamedSharding(mesh, P()))
    return args, NamedSharding(mesh, P(axes))

  def infer(mesh, arg_shapes, result_shape):
    del result_shape
    return shardings(mesh, _batch_axes(mesh, arg_shapes))[1]

  def partition(mesh, arg_shapes, result_shape):
    del result_shape
    axes = _batch_axes(mesh, arg_shapes)
    args, out = shardings(mesh, axes)
    lower = fn
    if kind == "bwd_weights" and axes is not None:
      def lower(x, dy):  # each device's examples give a partial sum
        dw, db = fn(x, dy)
        return lax.psum(dw, axes), lax.psum(db, axes)
    return mesh, lower, out, args

  # Every factor but the batch is replicated; in order of first appearance (Shardy wants the
  # special factors' indices sorted).
  factors = list(dict.fromkeys(rule.replace(",", " ").replace("->", " ").split()))
  factors.remove("b")
  op.def_partition(partition=partition, infer_sharding_from_operands=infer, sharding_rule=rule,
                   need_replication_factors=tuple(factors),
                   reduction_factors=("b",) if kind == "bwd_weights" else ())
  return op


def _fold(x):
  return x.reshape((x.shape[0] * x.shape[1], *x.shape[2:]))


def _unfold(y, n):
  return y.reshape((n, y.shape[0] // n, *y.shape[1:]))


def _axes(in_batched):
  return tuple(0 if b else None for b in in_batched)


# ------------------------------------------------------------------------------ the three ops
@functools.lru_cache(maxsize=None)
def fwd_op(geo: Geometry, has_bias: bool, act: str | None) -> Callable:
  """``(x [N, H, W, C], w, b [OC]) -> act(conv(x, w) + b)`` as one oneDNN call."""
  attrs = geo.attrs(has_bias, act)
  name = TARGETS["fwd"][0]

  def call(x, w, b):
    out = jax.ShapeDtypeStruct((x.shape[0], *geo.out_hw, geo.kernel[3]), x.dtype)
    return jax.ffi.ffi_call(name, out, vmap_method="sequential")(x, w, b, **attrs)

  op = custom_vmap(_partitioned(call, "fwd"))

  @op.def_vmap
  def _rule(axis_size, in_batched, x, w, b):
    if in_batched[1] or in_batched[2] or not in_batched[0]:
      f = functools.partial(_xla_fwd, geo=geo, has_bias=has_bias, act=act)
      return jax.vmap(f, in_axes=_axes(in_batched), axis_size=axis_size)(x, w, b), True
    return _unfold(op(_fold(x), w, b), axis_size), True

  return op


@functools.lru_cache(maxsize=None)
def bwd_data_op(geo: Geometry) -> Callable:
  """``(dy [N, OH, OW, OC], w) -> dx [N, H, W, C]``, the input gradient of the convolution."""
  attrs = {"geom": geo.attrs()["geom"]}
  name = TARGETS["bwd_data"][0]

  def call(dy, w):
    out = jax.ShapeDtypeStruct((dy.shape[0], *geo.in_hwc), dy.dtype)
    return jax.ffi.ffi_call(name, out, vmap_method="sequential")(dy, w, **attrs)

  op = custom_vmap(_partitioned(call, "bwd_data"))

  @op.def_vmap
  def _rule(axis_size, in_batched, dy, w):
    if in_batched[1] or not in_batched[0]:
      f = functools.partial(_xla_bwd_data, geo=geo)
      return jax.vmap(f, in_axes=_axes(in_batched), axis_size=axis_size)(dy, w), True
    return _unfold(op(_fold(dy), w), axis_size), True

  return op


@functools.lru_cache(maxsize=None)
def bwd_weights_op(geo: Geometry) -> Callable:
  """``(x, dy) -> (dw [KH, KW, C / G, OC], db [OC])``: kernel and bias gradients."""
  attrs = {"geom": geo.attrs()["geom"]}
  name = TARGETS["bwd_weights"][0]

  def call(x, dy):
    out = (jax.ShapeDtypeStruct(geo.kernel, x.dtype),
           jax.ShapeDtypeStruct((geo.kernel[3],), x.dtype))
    return tuple(jax.ffi.ffi_call(name, out, vmap_method="sequential")(x, dy, **attrs))

  op = custom_vmap(_partitioned(call, "bwd_weights"))

  @op.def_vmap
  def _rule(axis_size, in_batched, x, dy):
    # Per-example kernel gradients (vmap over a gradient): XLA's convolution, one per example.
    f = functools.partial(_xla_bwd_weights, geo=geo)
    return jax.vmap(f, in_axes=_axes(in_batched), axis_size=axis_size)(x, dy), (True, True)

  return op


def _activation_grad(act: str | None, t, dy):
  """``dy * act'(z)`` from ``t``: the output ``act(z)``, or ``z`` for FROM_PRE_ACTIVATION."""
  if act is None:
    return dy
  zero = jnp.zeros((), dy.dtype)
  if act == "relu":
    return jnp.where(t > 0, dy, zero)
  if act == "leaky_relu":
    return jnp.where(t > 0, dy, dy * FUSED[act][1])
  if act == "elu":
    return jnp.where(t > 0, dy, dy * (t + FUSED[act][1]))
  if act == "sigmoid":
    return dy * t * (1 - t)
  if act == "tanh":
    return dy * (1 - t * t)
  return jax.vjp(_core.ACTIVATIONS[act], t)[1](dy)[0]


@functools.lru_cache(maxsize=None)
def conv_fn(geo: Geometry, has_bias: bool, act: str | None) -> Callable:
  """``f(x, w, b) = act(conv(x, w) + b)`` (``b`` ignored unless ``has_bias``) with its VJP."""
  fwd, bwd_data, bwd_weights = fwd_op(geo, has_bias, act), bwd_data_op(geo), bwd_weights_op(geo)
  fwd_pre = fwd_op(geo, has_bias, None)

  @jax.custom_vjp
  def f(x, w, b):
    return fwd(x, w, b)

  def f_fwd(x, w, b):
    if act in FROM_PRE_ACTIVATION:
      z = fwd_pre(x, w, b)
      return _core.ACTIVATIONS[act](z), (x, w, z)
    y = fwd(x, w, b)
    return y, (x, w, y)

  def f_bwd(res, dy):
    x, w, t = res
    dz = _activation_grad(act, t, dy)
    dw, db = bwd_weights(x, dz)
    return bwd_data(dz, w), dw, db

  f.defvjp(f_fwd, f_bwd)
  return f


# ------------------------------------------------------------------------------ dispatch
class Runtime:
  """The loaded library: which geometries oneDNN runs well (queried once each)."""

  def __init__(self, lib: ctypes.CDLL, bf16: bool):
    self.lib, self.bf16 = lib, bf16
    self._supported: dict[Any, bool] = {}

  def query(self, kind: str, dtype, n: int, geo: Geometry, has_bias: bool = False,
            act: str | None = None) -> tuple[bool, str]:
    """``(ok, implementation name or reason)`` for one primitive (created and cached)."""
    a = geo.attrs(has_bias, act)
    g = a["geom"]
    buf = ctypes.create_string_buffer(512)
    rc = self.lib.jaxcnn_onednn_query(
        KINDS[kind], DTYPES[np.dtype(dtype)], n, g.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
        len(g), float(a["alpha"]), float(a["beta"]), 1, buf, len(buf))
    return rc == 0, buf.value.decode(errors="replace")

  def supported(self, dtype, n: int, geo: Geometry, has_bias: bool, act: str | None) -> bool:
    """Whether oneDNN has an optimised (not reference) implementation of all three parts."""
    key = (np.dtype(dtype), geo, has_bias, act)
    if key not in self._supported:
      ok = True
      for kind in KINDS:
        good, impl = self.query(kind, dtype, n, geo, has_bias and kind == "fwd",
                                act if kind == "fwd" else None)
        ok = ok and good and not impl.startswith("ref")
      self._supported[key] = ok
    return self._supported[key]

  def stats(self) -> dict[str, int]:
    out = (ctypes.c_int64 * 7)()
    self.lib.jaxcnn_onednn_stats(out)
    return dict(zip(("primitives_created", "calls", "chunks", "primitives_cached",
                     "cpu_ns_fwd", "cpu_ns_bwd_data", "cpu_ns_bwd_weights"), out))


def _varies_over_manual_axes(*arrays) -> bool:
  """Whether any array is typed as varying over ``shard_map`` mesh axes (whose custom-VJP
  typing rules the FFI calls' results do not follow: such convolutions keep the XLA path)."""
  for a in arrays:
    if a is None:
      continue
    aval = jax.typeof(a) if hasattr(jax, "typeof") else jax.core.get_aval(a)
    mat = getattr(aval, "manual_axis_type", None)  # jax >= 0.8
    if mat is not None and (mat.varying or getattr(mat, "unreduced", ())
                            or getattr(mat, "reduced", ())):
      return True
    if getattr(aval, "vma", None):  # jax 0.7
      return True
  return False


def make_conv(runtime: Runtime) -> Callable:
  """The convolution backend for ``jaxcnn.functional.conv``: takes a 2-D NHWC float32 (or,
  where oneDNN runs it natively, bfloat16) convolution on the CPU backend without an explicit
  ``precision`` and returns ``None`` for everything else, which then takes the XLA path."""

  def conv(x, w, b, *, stride, padding, dilation, groups, precision, activation):
    # An explicit precision is a request for lax's convolution: it keeps the XLA path.
    if (precision is not None or x.ndim != 4 or jax.default_backend() != "cpu"
        or x.shape[0] == 0):
      return None
    dtype = np.dtype(x.dtype)
    if dtype not in DTYPES or (dtype == np.dtype(jnp.bfloat16) and not runtime.bf16):
      return None
    if any(p < 0 for pair in padding for p in pair) or _varies_over_manual_axes(x, w, b):
      return None
    geo = Geometry(tuple(x.shape[1:]), tuple(w.shape), tuple(stride),
                   tuple(tuple(p) for p in padding), tuple(dilation), groups)
    act = fused_name(activation)
    has_bias = b is not None
    if not runtime.supported(dtype, x.shape[0], geo, has_bias, act):
      return None
    b = jnp.asarray(b).astype(dtype) if has_bias else jnp.zeros((w.shape[-1],), dtype)
    y = conv_fn(geo, has_bias, act)(x, w, b)
    if activation is not None and act is None:
      y = activation(y)
    return y

  return conv
