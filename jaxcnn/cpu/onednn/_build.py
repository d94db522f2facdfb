"""Finding oneDNN and a compiler, compiling ``conv.cc`` once into a cache, and loading it.

The library is compiled on first use (inside :func:`jaxcnn.cpu.onednn.activate`, never at
import) with the system's C++ compiler against the headers of the running jaxlib
(``jax.ffi.include_dir()``) and of the oneDNN wheel, into
``$JAXCNN_CACHE_DIR/onednn/<key>/`` (``~/.cache/jaxcnn`` by default). The key hashes the C++
source, the compile command, the jaxlib version, the oneDNN version and library path and the
compiler's version, so a change of any of them builds anew and a cached build is never used
against another jaxlib. The file is written under a temporary name and renamed, so concurrent
processes never load a half-written library.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import os
import pathlib
import platform
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any

SOURCE = pathlib.Path(__file__).with_name("conv.cc")
LIBRARY_NAME = "libjaxcnn_onednn.so"
# The oneDNN CPU build with GNU OpenMP (libgomp ships with every g++): the extension runs its
# primitives single-threaded on XLA's threads and needs the OpenMP entry points to say so.
WHEEL = "onednn-cpu-gomp"
DEVEL_WHEEL = "onednn-devel-cpu-gomp"
INSTALL_HINT = "pip install 'jaxcnn[onednn]'"
CXXFLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC")


class Unavailable(RuntimeError):
  """The extension cannot be built or loaded here; the message says why, in one line."""


def _wheel_file(dist_name: str, suffix: str) -> pathlib.Path | None:
  """The first file of an installed distribution whose path ends with ``suffix``."""
  try:
    dist = importlib.metadata.distribution(dist_name)
  except importlib.metadata.PackageNotFoundError:
    return None
  for f in dist.files or ():
    path = pathlib.Path(os.path.normpath(dist.locate_file(f)))
    if path.as_posix().endswith("/" + suffix) and path.exists():
      return path
  return None


def find_onednn() -> dict[str, Any]:
  """``{'version', 'wheel', 'include', 'library'}`` of the installed oneDNN wheels (the
  library's version, e.g. ``'3.2.0'``, and the wheel's, e.g. ``'2023.2.0'``); raises
  :class:`Unavailable` when they are missing."""
  lib = _wheel_file(WHEEL, "lib/libdnnl.so.3")
  header = _wheel_file(DEVEL_WHEEL, "include/oneapi/dnnl/dnnl.hpp")
  missing = [n for n, p in ((WHEEL, lib), (DEVEL_WHEEL, header)) if p is None]
  if missing:
    raise Unavailable(f"the oneDNN wheels are not installed ({', '.join(missing)} missing): "
                      f"{INSTALL_HINT}")
  text = (header.parent / "dnnl_version.h").read_text(errors="replace")
  parts = [re.search(rf"#define DNNL_VERSION_{p}\s+(\d+)", text) for p in ("MAJOR", "MINOR",
                                                                         "PATCH")]
  version = ".".join(m.group(1) for m in parts) if all(parts) else "?"
  return {"version": version, "wheel": importlib.metadata.version(WHEEL),
          "include": header.parents[2], "library": lib}


def find_compiler(compiler: str | None = None) -> tuple[str, str]:
  """``(path, version line)`` of the C++ compiler (``compiler``, else ``g++`` on ``PATH``)."""
  name = compiler or "g++"
  path = shutil.which(name)
  if path is None:
    raise Unavailable(f"no C++ compiler ({name}) on PATH to build the oneDNN extension: install "
                      "g++ (Debian/Ubuntu: apt-get install g++)")
  try:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
  except (OSError, subprocess.SubprocessError) as e:
    raise Unavailable(f"the C++ compiler {path} does not run: {e}") from None
  return path, (out.stdout.splitlines() or ["?"])[0]


def check_platform() -> None:
  """Raises :class:`Unavailable` off Linux x86-64 or without jax's FFI API."""
  system, machine = platform.system(), platform.machine().lower()
  if system != "Linux" or machine not in ("x86_64", "amd64"):
    raise Unavailable(f"the oneDNN extension needs Linux on x86-64 (this is {system} {machine})")
  import jax  # pylint: disable=g-import-not-at-top
  ffi = getattr(jax, "ffi", None)
  needed = ("ffi_call", "register_ffi_target", "pycapsule", "include_dir")
  if ffi is None or not all(hasattr(ffi, n) for n in needed):
    raise Unavailable(f"jax {jax.__version__} lacks the XLA FFI API (jax.ffi) the extension "
                      "needs")
  header = pathlib.Path(ffi.include_dir()) / "xla" / "ffi" / "api" / "ffi.h"
  if not header.exists():
    raise Unavailable(f"jaxlib ships no XLA FFI headers ({header} is missing)")


def cache_root() -> pathlib.Path:
  return pathlib.Path(os.environ.get("JAXCNN_CACHE_DIR", "~/.cache/jaxcnn")).expanduser()


def _command(compiler: str, onednn: dict[str, Any], out: pathlib.Path) -> list[str]:
  import jax  # pylint: disable=g-import-not-at-top
  libdir = onednn["library"].parent
  return [compiler, *CXXFLAGS, "-isystem", str(jax.ffi.include_dir()), "-isystem",
          str(onednn["include"]), str(SOURCE), "-o", str(out), "-L", str(libdir),
          f"-l:{onednn['library'].name}", "-lgomp", f"-Wl,-rpath,{libdir}"]


def cache_key(compiler_version: str, onednn: dict[str, Any]) -> str:
  import jaxlib  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256(SOURCE.read_bytes())
  for part in (" ".join(CXXFLAGS), jaxlib.__version__, onednn["version"],
               str(onednn["library"].resolve()), compiler_version):
    h.update(b"\0" + part.encode())
  return h.hexdigest()[:16]


def library_path(compiler: str | None = None) -> tuple[pathlib.Path, bool]:
  """``(path of the built library, whether it exists)`` for this jaxlib, oneDNN and compiler.

  Without a compiler, an existing build for this jaxlib and oneDNN (any compiler) is used."""
  onednn = find_onednn()
  try:
    _, version = find_compiler(compiler)
  except Unavailable:
    builds = sorted(cache_root().glob(f"onednn/*/{LIBRARY_NAME}"))
    for b in builds:
      stamp = b.with_name("build.txt")
      if stamp.exists() and _stamp(onednn) in stamp.read_text():
        return b, True
    raise
  path = cache_root() / "onednn" / cache_key(version, onednn) / LIBRARY_NAME
  return path, path.exists()


def _stamp(onednn: dict[str, Any]) -> str:
  import jaxlib  # pylint: disable=g-import-not-at-top
  return (f"source sha256 {hashlib.sha256(SOURCE.read_bytes()).hexdigest()}; jaxlib "
          f"{jaxlib.__version__}; oneDNN {onednn['version']} at {onednn['library'].resolve()}")


def build(compiler: str | None = None, force: bool = False) -> tuple[pathlib.Path, float]:
  """Compiles ``conv.cc`` unless a build for this configuration is cached.

  Returns ``(library path, seconds spent compiling)`` (0.0 for a cache hit). Raises
  :class:`Unavailable` with the compiler's first error line when compiling fails."""
  check_platform()
  path, exists = library_path(compiler)
  if exists and not force:
    return path, 0.0
  compiler_path, version = find_compiler(compiler)
  onednn = find_onednn()
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=path.parent)
  os.close(fd)
  cmd = _command(compiler_path, onednn, pathlib.Path(tmp))
  t0 = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode:
      errors = [l for l in proc.stderr.splitlines() if "error" in l] or proc.stderr.splitlines()
      raise Unavailable(f"compiling the oneDNN extension failed: {(errors or ['?'])[0][:300]} "
                        f"(command: {' '.join(cmd)})")
    path.with_name("build.txt").write_text(
        f"{_stamp(onednn)}\ncompiler: {version}\ncommand: {' '.join(cmd)}\n")
    os.replace(tmp, path)  # atomic: another process sees the old file or the whole new one
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return path, time.perf_counter() - t0


def load(path: pathlib.Path) -> ctypes.CDLL:
  """Loads the built library (oneDNN first, from the wheel, in case the rpath is stale)."""
  onednn = find_onednn()
  try:
    ctypes.CDLL(str(onednn["library"]), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(path))
  except OSError as e:
    raise Unavailable(f"loading the oneDNN extension failed: {e}") from None
  lib.jaxcnn_onednn_version.argtypes = [ctypes.c_char_p, ctypes.c_int]
  lib.jaxcnn_onednn_query.argtypes = [
      ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.POINTER(ctypes.c_int64), ctypes.c_int,
      ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
  lib.jaxcnn_onednn_query.restype = ctypes.c_int
  lib.jaxcnn_onednn_stats.argtypes = [ctypes.POINTER(ctypes.c_int64)]
  lib.jaxcnn_onednn_set_max_threads.argtypes = [ctypes.c_int]
  lib.jaxcnn_onednn_set_max_threads.restype = ctypes.c_int
  lib.jaxcnn_onednn_set_threading.argtypes = [ctypes.c_int]
  lib.jaxcnn_onednn_set_threading.restype = ctypes.c_int
  return lib
