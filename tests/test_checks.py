"""jaxcnn._checks: the exact message of every check, what each accepts and returns, tracers, the
NCHW hint through the ops, layers and models, and that no copy of a check is written elsewhere."""

import ast
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import _checks as C
from jaxcnn import functional as F
from jaxcnn import layers as L
from jaxcnn import models

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxcnn"


def _message(fn, *args, **kwargs) -> str:
  with pytest.raises(ValueError) as info:
    fn(*args, **kwargs)
  return str(info.value)


# ------------------------------------------------------------------------------ exact messages

@pytest.mark.parametrize("call, message", [
    (lambda: C.positive_int(0, "batch_size"), "`batch_size` (=0) must be an int >= 1"),
    (lambda: C.positive_int(True, "batch_size"), "`batch_size` (=True) must be an int >= 1"),
    (lambda: C.positive_int(np.bool_(True), "k"), "`k` (=np.True_) must be an int >= 1"
     if np.__version__ >= "2" else "`k` (=True) must be an int >= 1"),
    (lambda: C.positive_int(2.5, "epochs"), "`epochs` (=2.5) must be an int >= 1"),
    (lambda: C.positive_int(2.0, "epochs"), "`epochs` (=2.0) must be an int >= 1"),
    (lambda: C.positive_int("8", "batch_size"), "`batch_size` (='8') must be an int >= 1"),
    (lambda: C.positive_int(None, "k"), "`k` (=None) must be an int >= 1"),
    (lambda: C.positive_int(-1, "patience", low=0), "`patience` (=-1) must be an int >= 0"),
    (lambda: C.positive_int(0, "ncols", optional=True), "`ncols` (=0) must be an int >= 1 or None"),
    (lambda: C.positive_int(0, "features", where="Conv"),
     "Conv `features` (=0) must be an int >= 1"),
    (lambda: C.positive_int(0, "data.batch_size", fix="the global batch"),
     "`data.batch_size` (=0) must be an int >= 1; the global batch"),
    (lambda: C.int_tuple(0, "stride", n=2), "`stride` (=0) must be >= 1"),
    (lambda: C.int_tuple((3, 0), "kernel_size", where="Conv"),
     "Conv `kernel_size` (=(3, 0)) must be >= 1"),
    (lambda: C.int_tuple((1, 2, 3), "stride", n=2),
     "`stride` (=(1, 2, 3)) must have one entry per spatial dimension (2)"),
    (lambda: C.int_tuple(1.5, "stride", n=2),
     "`stride` must be an int or a sequence of ints, got 1.5"),
    (lambda: C.int_tuple(True, "stride"),
     "`stride` must be an int or a sequence of ints, got True"),
    (lambda: C.int_tuple((), "window"), "`window` must be an int or a sequence of ints, got ()"),
    (lambda: C.int_tuple("3", "window"), "`window` must be an int or a sequence of ints, got '3'"),
    (lambda: C.int_tuple((1, 2.0), "dilation"),
     "`dilation` must be an int or a sequence of ints, got (1, 2.0)"),
    (lambda: C.int_tuple(-1, "padding", n=2, low=0), "`padding` (=-1) must be >= 0"),
    (lambda: C.divisible(12, "batch_size", 8, "the number of devices"),
     "`batch_size` (=12) must be divisible by the number of devices (=8)"),
    (lambda: C.divisible(12, "batch_size", 8, "the number of devices", fix="parallel='mesh'"),
     "`batch_size` (=12) must be divisible by the number of devices (=8); parallel='mesh'"),
    (lambda: C.groups(3, None, 2), "`in_channels` (=3) must be divisible by `groups` (=2)"),
    (lambda: C.groups(None, 3, 2, out_from="w.shape[-1]"),
     "`out_channels` (=w.shape[-1]=3) must be divisible by `groups` (=2)"),
    (lambda: C.groups(3, 8, 2, out_name="features"),
     "`in_channels` (=3) and `features` (=8) must be divisible by `groups` (=2)"),
    (lambda: C.groups(None, 8, 3, out_name="features", where="Conv"),
     "Conv `features` (=8) must be divisible by `groups` (=3)"),
    (lambda: C.groups(4, 4, 0), "`groups` (=0) must be an int >= 1"),
    (lambda: C.groups(4, 4, True), "`groups` (=True) must be an int >= 1"),
    (lambda: C.static_float("0.5", "rate", 0.0, 1.0),
     "`rate` (='0.5') must be a float in [0, 1), not a str"),
    (lambda: C.static_float(1.0, "rate", 0.0, 1.0), "`rate` (=1.0) must be a float in [0, 1)"),
    (lambda: C.static_float(float("nan"), "rate", 0.0, 1.0),
     "`rate` (=nan) must be a float in [0, 1)"),
    (lambda: C.static_float(1.5, "momentum", 0.0, 1.0, high_closed=True, where="BatchNorm"),
     "BatchNorm `momentum` (=1.5) must be a float in [0, 1]"),
    (lambda: C.static_float(0.0, "alpha", 0.0, 1.0, low_closed=False, high_closed=True),
     "`alpha` (=0.0) must be a float in (0, 1]"),
    (lambda: C.static_float(-1.0, "epsilon", 0.0), "`epsilon` (=-1.0) must be a float >= 0"),
    (lambda: C.static_float(0.0, "scale", 0.0, low_closed=False),
     "`scale` (=0.0) must be a float > 0"),
    (lambda: C.static_float(2.0, "p", high=1.0, high_closed=True),
     "`p` (=2.0) must be a float <= 1"),
    (lambda: C.static_float(None, "eps"), "`eps` (=None) must be a float, not a NoneType"),
    (lambda: C.static_float(True, "eps"), "`eps` (=True) must be a float, not a bool"),
    (lambda: C.number(0.5, "p", 1.0, where="LpPool"), "LpPool `p` (=0.5) must be a number >= 1"),
    (lambda: C.number(-0.1, "learning_rate", 0.0, low_closed=False),
     "`learning_rate` (=-0.1) must be a number > 0"),
    (lambda: C.number("1e-3", "learning_rate", 0.0, low_closed=False),
     "`learning_rate` (='1e-3') must be a number > 0, not a str"),
    (lambda: C.rate(1.0, where="Dropout"), "Dropout `rate` (=1.0) must be a float in [0, 1)"),
    (lambda: C.rate(-0.1, "label_smoothing"),
     "`label_smoothing` (=-0.1) must be a float in [0, 1)"),
    (lambda: C.real_param("0.1", "negative_slope", where="leaky_relu"),
     "leaky_relu `negative_slope` (='0.1') must be a number or a float array, not a str"),
    (lambda: C.real_param(None, "alpha"),
     "`alpha` (=None) must be a number or a float array, not a NoneType"),
    (lambda: C.choice("fast", "data.loader", ("device", "stream")),
     "unknown `data.loader` (='fast'); known: device, stream"),
    (lambda: C.choice("sum", "pool", ("avg", "max"), where="LeNet5"),
     "unknown LeNet5 `pool` (='sum'); known: avg, max"),
    (lambda: C.choice(4, "depth", (2, 3), fix="2 is airbench94, 3 airbench96"),
     "unknown `depth` (=4); known: 2, 3; 2 is airbench94, 3 airbench96"),
    (lambda: C.choice(["crop"], "augment", {"crop": 1, "flip": 2}),
     "unknown `augment` (=['crop']); known: crop, flip"),
    (lambda: C.boolean("False", "plots"), "`plots` (='False') must be True or False"),
    (lambda: C.boolean(1, "tensorboard"), "`tensorboard` (=1) must be True or False"),
    (lambda: C.boolean(None, "ema_warmup", where="fit"),
     "fit `ema_warmup` (=None) must be True or False"),
    (lambda: C.rank(np.zeros((4, 4)), (3, 4, 5)),
     "`x` must be [B, W, C], [B, H, W, C] or [B, D, H, W, C], got shape (4, 4) (rank 2)"),
    (lambda: C.rank(np.zeros((4, 4)), (3, 4, 5), where="max_pool"),
     "max_pool expects `x` of shape [B, W, C], [B, H, W, C] or [B, D, H, W, C], got shape "
     "(4, 4) (rank 2)"),
    (lambda: C.rank(np.zeros((1, 5, 4, 2)), 3, where="`conv1d`",
                    fix="use `conv` for any spatial rank"),
     "`conv1d` expects `x` of shape [B, W, C], got shape (1, 5, 4, 2) (rank 4); use `conv` for "
     "any spatial rank"),
    (lambda: C.rank((4, 4), (3, 4, 5), "input_shape", where="conv_output_shape", is_shape=True),
     "conv_output_shape expects `input_shape` to be [B, W, C], [B, H, W, C] or [B, D, H, W, C], "
     "got (4, 4) (rank 2)"),
    (lambda: C.rank(np.zeros((6, 8, 8)), 4, "images", where="`random_flip`"),
     "`random_flip` expects `images` of shape [B, H, W, C], got shape (6, 8, 8) (rank 3)"),
    (lambda: C.rank(np.zeros((8, 8)), 4, "images", layouts="[N, H, W, C]"),
     "`images` must be [N, H, W, C], got shape (8, 8) (rank 2)"),
    (lambda: C.rank(np.zeros((8, 3, 32, 32)), 3, where="conv1d"),
     "conv1d expects `x` of shape [B, W, C], got shape (8, 3, 32, 32) (rank 4); jaxcnn is "
     "channels-last: [B, H, W, C]; for an NCHW array use x.transpose(0, 2, 3, 1)"),
    (lambda: C.min_rank(np.zeros((4, 4)), 3, where="channel_dropout", layout="[B, *spatial, C]"),
     "channel_dropout expects `x` of shape [B, *spatial, C] (rank >= 3), got shape (4, 4) "
     "(rank 2)"),
    (lambda: C.min_rank(np.zeros(3), 2), "`x` must be [B, ..., C] (rank >= 2), got shape (3,) "
     "(rank 1)"),
])
def test_exact_messages(call, message):
  assert _message(call) == message


# ------------------------------------------------------------------------------ what passes

def test_ints_accept_numpy_ints_and_return_python_ints():
  for value in (3, np.int64(3), np.int32(3), np.uint8(3)):
    out = C.positive_int(value, "k")
    assert out == 3 and type(out) is int
  assert C.positive_int(0, "patience", low=0) == 0
  assert C.positive_int(None, "ncols", optional=True) is None
  assert C.int_tuple(np.int64(2), "stride", n=3) == (2, 2, 2)
  out = C.int_tuple(np.arange(1, 3), "kernel_size")
  assert out == (1, 2) and all(type(v) is int for v in out)
  assert C.int_tuple([3, 5], "kernel_size", n=2) == (3, 5)
  assert C.groups(np.int64(4), 8, np.int64(2)) == 2


def test_bools_are_not_ints():
  for check in (lambda v: C.positive_int(v, "n"), lambda v: C.int_tuple(v, "n"),
                lambda v: C.int_tuple((1, v), "n"), lambda v: C.groups(4, 4, v)):
    for value in (True, False, np.bool_(True)):
      with pytest.raises(ValueError):
        check(value)
  assert not C.is_int(True) and not C.is_int(np.bool_(False)) and C.is_int(np.int16(1))


def test_floats_accept_ints_and_numpy_scalars_and_return_python_floats():
  for value in (0, np.float32(0.25), np.int64(0), np.array(0.5)):
    out = C.static_float(value, "rate", 0.0, 1.0)
    assert out == float(value) and type(out) is float
  assert C.number(float("inf"), "p", 1.0) == float("inf")
  assert C.static_float(1.0, "momentum", 0.0, 1.0, high_closed=True) == 1.0
  assert C.rate(0.0) == 0.0


def test_real_param_passes_numbers_and_real_arrays_unchanged():
  for value in (0.1, 2, np.float32(0.1), jnp.ones(3, jnp.bfloat16), np.ones(2, np.int8)):
    assert C.real_param(value, "alpha") is value
  with pytest.raises(ValueError):
    C.real_param(np.array(["a"]), "alpha")
  with pytest.raises(ValueError):
    C.real_param(jnp.ones(2, bool), "alpha")


def test_choice_and_boolean_return_the_value():
  assert C.choice("mesh", "parallel", ("none", "pmap", "mesh")) == "mesh"
  assert C.choice("crop", "augment", {"crop": 1}) == "crop"
  assert C.boolean(np.bool_(False), "plots") is False
  assert C.boolean(True, "plots") is True


def test_rank_returns_the_rank():
  assert C.rank(np.zeros((2, 4, 4, 3)), (3, 4, 5)) == 4
  assert C.rank((2, 4, 3), (3, 4, 5), is_shape=True) == 3
  assert C.rank([[1.0, 2.0]], 2) == 2  # anything np.shape reads
  assert C.min_rank(jnp.zeros((2, 3)), 2) == 2


# ------------------------------------------------------------------------------ tracers

def test_a_traced_value_is_refused_with_the_static_fix():
  with pytest.raises(ValueError, match=r"^`k` \(=.*Trace.*\) must be an int >= 1; pass a Python "
                     r"int \(static\), not a traced array(\n|$)"):
    jax.jit(lambda k: C.positive_int(k, "k"))(3)
  with pytest.raises(ValueError, match=r"^Dropout `rate` \(=.*Trace.*\) must be a float in "
                     r"\[0, 1\), not a .*; pass a Python float \(static\), not a traced "
                     r"array(\n|$)"):
    jax.jit(lambda r: C.rate(r, where="Dropout"))(0.5)
  with pytest.raises(ValueError, match=r"pass a Python number \(static\)"):
    jax.jit(lambda p: C.number(p, "p", 1.0))(2.0)
  assert jax.jit(lambda x: jnp.float32(C.is_tracer(x) and not C.is_real_number(x)))(1.0) == 1
  assert not C.is_tracer(1.0) and not C.is_tracer(jnp.ones(2))


def test_a_check_that_allows_traced_values_passes_them_and_checks_concrete_arrays():
  out = jax.jit(lambda m: C.static_float(m, "momentum", 0.0, 1.0, allow_traced=True) * 2)(0.25)
  assert float(out) == 0.5
  assert C.static_float(jnp.float32(0.5), "momentum", 0.0, 1.0, allow_traced=True) == 0.5
  with pytest.raises(ValueError, match=r"`momentum` \(=1\.5\) must be a float in \[0, 1\]$"):
    C.static_float(jnp.float32(1.5), "momentum", 0.0, 1.0, high_closed=True, allow_traced=True)
  # Shapes of traced arrays are static: the rank check works under jit.
  assert jax.jit(lambda x: x * C.rank(x, 4))(jnp.ones((1, 2, 2, 1))).shape == (1, 2, 2, 1)
  # real_param passes a traced array (a learnable slope).
  y = jax.jit(lambda s: F.leaky_relu(-jnp.ones(2), s))(jnp.float32(0.5))
  np.testing.assert_allclose(y, [-0.5, -0.5])


def test_the_module_imports_no_jax():
  imported = set()
  for node in ast.walk(ast.parse((ROOT / "_checks.py").read_text())):
    if isinstance(node, ast.Import):
      imported |= {a.name.split(".")[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      imported.add((node.module or "").split(".")[0])
  assert imported <= {"__future__", "numbers", "sys", "collections", "typing", "numpy"}, imported


# ------------------------------------------------------------------------------ channels-last hint

NCHW = np.zeros((8, 3, 32, 32), np.float32)
# Raised inside a JAX transformation (Flax's init), a message may be followed by JAX's note on
# filtered traceback frames on its own line: the hint ends the first line.
HINT = re.escape("jaxcnn is channels-last: [B, H, W, C]; for an NCHW array use "
                 "x.transpose(0, 2, 3, 1)") + "(\n|$)"


def test_looks_nchw():
  for shape in ((8, 3, 32, 32), (8, 1, 28, 28), (1, 3, 224, 224), (2, 3, 8, 16)):
    assert C.looks_nchw(shape), shape
  for shape in ((8, 32, 32, 3), (8, 28, 28, 1), (8, 3, 3, 3), (8, 3, 32, 4), (8, 2, 32, 32),
                (8, 1, 1, 32), (8, 3, 4, 64), (3, 32, 32), (8, 3, 32, 32, 32)):
    assert not C.looks_nchw(shape), shape
  assert C.channels_last_hint((8, 32, 32, 3)) == ""


@pytest.mark.parametrize("w_shape", [(3, 3, 3, 32), (32, 3, 3, 3)], ids=["HWIO", "OIHW"])
def test_an_nchw_batch_given_to_conv_names_the_layout(w_shape):
  with pytest.raises(ValueError, match=r"`x.shape\[-1\]` \(=32\).*\(8, 3, 32, 32\); " + HINT):
    F.conv(NCHW, np.zeros(w_shape, np.float32))
  with pytest.raises(ValueError, match=r"`in_channels` \(=32\) must be divisible by `groups` "
                     r"\(=3\); " + HINT):
    F.conv(NCHW, np.zeros((3, 3, 1, 3), np.float32), groups=3)


def test_an_op_runs_on_an_nchw_shaped_input_whose_channels_match_the_kernel():
  # [8, 3, 32, 32] with a kernel for 32 input channels is a valid channels-last input (3 rows of
  # 32 channels, as a feature map deep in a net can be): a pure op cannot refuse it.
  assert F.conv(NCHW, np.zeros((3, 3, 32, 4), np.float32)).shape == (8, 1, 30, 4)


def test_an_nchw_batch_given_to_a_conv_layer_names_the_layout():
  conv = L.Conv(16, 3)
  variables = conv.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  with pytest.raises(ValueError, match=r"^Conv got x of shape \(8, 3, 32, 32\) \(32 input "
                     r"channels\), but its 'kernel' has shape \(3, 3, 3, 16\) .*; " + HINT):
    conv.apply(variables, NCHW)
  with pytest.raises(ValueError, match=r"^Conv: kernel of size 5 is larger than the padded input "
                     r"3 .*; " + HINT):
    L.Conv(16, 5).init(jax.random.key(0), NCHW)
  with pytest.raises(ValueError, match=r"^MaxPool: pooling window of size 4 .*; " + HINT):
    L.MaxPool(4).init(jax.random.key(0), NCHW)
  with pytest.raises(ValueError, match=r"^Conv: `in_channels` \(=32\) must be divisible by "
                     r"`groups` \(=3\); " + HINT):
    L.Conv(6, 3, groups=3).init(jax.random.key(0), NCHW)


def test_an_error_on_a_small_channels_last_feature_map_has_no_hint():
  # tutorial_cnn on 8x8 images: the second pool meets a [B, 1, 1, 64] feature map.
  with pytest.raises(ValueError, match=r"^MaxPool 'MaxPool_1': pooling window of size 2 is "
                     r"larger than the padded input 1 .* dimension 0(\n|$)"):
    models.get_model("tutorial_cnn").init(jax.random.key(0), jnp.zeros((2, 8, 8, 3)))


@pytest.mark.parametrize("name, shape", [("resnet20", (8, 3, 32, 32)),
                                         ("tutorial_cnn", (8, 3, 32, 32)),
                                         ("lenet5", (8, 1, 28, 28))])
def test_an_nchw_batch_given_to_a_zoo_model_names_the_layout(name, shape):
  model = models.get_model(name)
  with pytest.raises(ValueError, match=rf"^\w+ got x of shape {re.escape(str(shape))}, which "
                     r"looks NCHW \(channels on axis 1\); " + HINT):
    model.init(jax.random.key(0), jnp.zeros(shape))
  # The same batch, channels-last, is fine.
  jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape).transpose(0, 2, 3, 1))


# ------------------------------------------------------------------------------ one place

# The phrases of the hand-written checks this family replaces, searched in the strings of every
# `raise` statement under jaxcnn/ (docstrings and comments do not count).
PHRASES = ("must be an int", "must be divisible by", "must be a float", "must be a number",
           "must be one of", "must be True or False", "must be a positive",
           "must be a non-negative", "; known: ", "(rank ")

# Raises that keep their own wording, each with its reason; anything else is a copy of a check
# in jaxcnn._checks and should call it.
OWN_WORDING = {
    # a dtype-like (jnp.float16, np.dtype, 'float16') is named by its dtype, with the float16 fix
    ("models/_registry.py", "must be one of"): 1,
    # `target`: an int class index or an int array [B]
    ("inspect.py", "must be an int"): 1,
    # the model names its spatial rank and the fix (x[None], x[..., None])
    ("models/_registry.py", "(rank "): 1,
    # padding is a string, an int or pairs; jaxcnn.shapes resolves it once the rank is known
    ("layers.py", "must be one of"): 1,
    # a lone [K] row of logits, with the fix logits[None]
    ("functional/_core.py", "(rank "): 1,
    # the kernel's rank must match the input's, whatever it is
    ("functional/_conv.py", "(rank "): 1,
    # a config file's own variant argument, before any config exists
    ("configs/speedrun.py", "; known: "): 1,
}


def _raise_strings(path: pathlib.Path):
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Raise) and node.exc is not None:
      yield "".join(c.value for c in ast.walk(node.exc)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str))


def test_checks_are_written_once():
  found: dict[tuple[str, str], int] = {}
  for path in sorted(ROOT.rglob("*.py")):
    rel = path.relative_to(ROOT).as_posix()
    if rel == "_checks.py":
      continue
    for text in _raise_strings(path):
      for phrase in PHRASES:
        if phrase in text:
          found[(rel, phrase)] = found.get((rel, phrase), 0) + 1
  differ = set(found.items()) ^ set(OWN_WORDING.items())
  assert not differ, ("a hand-written check outside jaxcnn/_checks.py (call the helper there "
                      f"instead), or one that moved onto it (drop its OWN_WORDING entry): {differ}")


def test_the_scanner_sees_a_hand_written_check(tmp_path):
  path = tmp_path / "m.py"
  path.write_text('def f(k):\n  """`k` must be an int >= 1."""\n'
                  '  raise ValueError(f"`k` (={k!r}) must be an int >= 1")\n')
  assert [t for t in _raise_strings(path)] == ["`k` (=) must be an int >= 1"]


def test_docstring_examples():
  import doctest
  assert doctest.testmod(C, raise_on_error=False).failed == 0
