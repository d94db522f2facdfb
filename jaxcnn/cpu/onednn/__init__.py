"""2-D convolutions on oneDNN through XLA's FFI: an optional CPU extension.

Install with ``pip install 'jaxcnn[onednn]'`` (Linux x86-64; it brings the oneDNN wheels,
``onednn-cpu-gomp`` and ``onednn-devel-cpu-gomp``) and a C++ compiler (``g++``). Nothing
happens at import: :func:`activate` compiles the library on first use (about 15-60 s, once per
jaxlib and oneDNN version, cached under ``$JAXCNN_CACHE_DIR/onednn``), registers its FFI
targets and routes :func:`jaxcnn.functional.conv` (and so :class:`jaxcnn.layers.Conv`) to it.

What runs on oneDNN while active: 2-D convolutions (``x: [B, H, W, C]``, ``w: [KH, KW, C / G,
OC]``) in float32, and in bfloat16 where this CPU runs bfloat16 natively (AVX-512 BF16 or AMX),
on the CPU backend, with any stride, padding >= 0 (explicit lo/hi pairs), dilation and groups
(depthwise included) for which oneDNN has an optimised kernel. The forward pass fuses the bias
and the activation (``relu``, ``leaky_relu``, ``elu``, ``sigmoid``, ``tanh``, ``gelu``, by name
or as the ``jaxcnn.functional`` function) as oneDNN post-ops; the input gradient and the kernel
gradient with the bias gradient are oneDNN's backward primitives. Everything else takes the XLA
path unchanged: 1-D and 3-D convolutions, other dtypes, other backends, geometries for which
oneDNN has only its reference kernel, and calls that pass an explicit ``precision``. Values
equal the XLA path to float32 rounding (summation order), not bit for bit.

The backend is chosen when a function is traced: :func:`activate` before ``jax.jit`` traces a
step (a function compiled before keeps the path it was compiled with).

Transformations: ``jit``, ``grad``/``vjp``, ``vmap`` (over examples: folded into the batch axis, one call), ``pmap`` and
``jit`` over a ``Mesh`` with the batch sharded (each device convolves its own examples). The
convolution is a ``jax.custom_vjp``, so forward-mode differentiation (``jax.jvp``,
``jax.jacfwd``, ``jax.hessian``) of a model is not supported while active: :func:`deactivate`
first.

Threads: the calls run on XLA's intra-op thread pool (the batch split over its threads, one
single-threaded oneDNN primitive per thread), so oneDNN starts no threads of its own and never
competes with XLA for the cores; only a batch smaller than the pool uses oneDNN's OpenMP
threads (as many as the pool has). oneDNN primitives are created once per shape and kept.

>>> from jaxcnn.cpu import onednn
>>> ok, why = onednn.available()
>>> line = onednn.activate() if ok else why      # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from jaxcnn.cpu.onednn._build import Unavailable

__all__ = ["available", "activate", "deactivate", "is_active", "info", "stats", "Unavailable"]

# oneDNN's ISA levels with native bfloat16 arithmetic.
BF16_ISAS = ("avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx", "avx512_core_amx_fp16")
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"runtime": None, "active": False, "line": None, "registered": False}


def available() -> tuple[bool, str]:
  """``(True, what will be used)`` if :func:`activate` can work here, else ``(False, why)``.

  Checks the platform, jax's FFI API, the oneDNN wheels and a compiler (or an existing build);
  compiles and loads nothing.
  """
  from jaxcnn.cpu.onednn import _build  # pylint: disable=g-import-not-at-top
  try:
    _build.check_platform()
    onednn = _build.find_onednn()
    path, exists = _build.library_path()
    if exists:
      return True, f"oneDNN {onednn['version']}, built: {path}"
    _, compiler = _build.find_compiler()
    return True, f"oneDNN {onednn['version']}, to be compiled with {compiler}"
  except Unavailable as e:
    return False, str(e)


def _load() -> Any:
  import jax  # pylint: disable=g-import-not-at-top
  from jaxcnn.cpu.onednn import _build, _ops  # pylint: disable=g-import-not-at-top
  path, seconds = _build.build()
  lib = _build.load(path)
  if not _STATE["registered"]:
    for target, symbol in _ops.TARGETS.values():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                  platform="cpu")
    _STATE["registered"] = True
  buf = ctypes.create_string_buffer(128)
  lib.jaxcnn_onednn_version(buf, len(buf))
  version, isa = (buf.value.decode().split() + ["?"])[:2]
  # bfloat16 only where the CPU has it natively (oneDNN's emulation on plain AVX-512 is slower
  # than XLA's convolution).
  bf16 = isa in BF16_ISAS
  runtime = _ops.Runtime(lib, bf16)
  runtime.version, runtime.isa, runtime.path, runtime.build_s = version, isa, path, seconds
  return runtime


def activate() -> str:
  """Builds (first time) and loads the library, registers its FFI targets and routes 2-D
  convolutions to it; returns one line saying what is now on.

  Raises :class:`Unavailable` (one line: why, and what to install) where it cannot work.
  Calling it again is free.
  """
  from jaxcnn.cpu.onednn import _ops  # pylint: disable=g-import-not-at-top
  from jaxcnn.functional import _conv  # pylint: disable=g-import-not-at-top
  with _LOCK:
    if _STATE["runtime"] is None:
      _STATE["runtime"] = _load()
    rt = _STATE["runtime"]
    _conv.set_cpu_conv_backend(_ops.make_conv(rt))
    _STATE["active"] = True
    dtypes = "float32, bfloat16" if rt.bf16 else "float32"
    built = f"; compiled in {rt.build_s:.0f} s" if rt.build_s else ""
    _STATE["line"] = (f"jaxcnn.cpu: 2-D convolutions ({dtypes}) on oneDNN {rt.version} "
                      f"({rt.isa}) with fused bias and activation, on XLA's CPU threads{built}")
    return _STATE["line"]


def deactivate() -> None:
  """Routes convolutions back to the XLA path (the library stays loaded; no-op if inactive)."""
  from jaxcnn.functional import _conv  # pylint: disable=g-import-not-at-top
  with _LOCK:
    if _STATE["active"]:
      _conv.set_cpu_conv_backend(None)
      _STATE["active"] = False


def is_active() -> bool:
  """Whether 2-D convolutions are routed to oneDNN now."""
  return _STATE["active"]


def info() -> dict[str, Any]:
  """What is loaded: ``{'active', 'version', 'isa', 'bfloat16', 'library'}`` (``{}`` before
  the first :func:`activate`)."""
  rt = _STATE["runtime"]
  if rt is None:
    return {}
  return {"active": _STATE["active"], "version": rt.version, "isa": rt.isa,
          "bfloat16": rt.bf16, "library": str(rt.path)}


def stats() -> dict[str, int]:
  """Counters of the loaded library: ``primitives_created``, ``calls`` (FFI calls executed),
  ``chunks`` (single-thread pieces run), ``primitives_cached``; ``{}`` before :func:`activate`."""
  rt = _STATE["runtime"]
  return {} if rt is None else rt.stats()
