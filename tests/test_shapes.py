"""Tests for jaxcnn.shapes: the shape and parameter arithmetic (plain Python, no compilation)."""

import doctest
import itertools

import numpy as np
import pytest
from jax import lax

from jaxcnn import shapes


def test_course_quiz_130x130x3_gives_16x16x20():
  # 130x130x3 -> Conv(3->10, k3) -> MaxPool(4, 4) -> Conv(10->20, k5, pad 2) -> MaxPool(2, 2).
  s = (1, 130, 130, 3)
  s = shapes.conv_output_shape(s, 3, 10)
  assert s == (1, 128, 128, 10)      # (130 - 3 + 0) / 1 + 1
  s = shapes.pool_output_shape(s, 4, stride=4)
  assert s == (1, 32, 32, 10)        # 128 / 4
  s = shapes.conv_output_shape(s, 5, 20, padding=2)
  assert s == (1, 32, 32, 20)        # (32 - 5 + 2 * 2) / 1 + 1
  s = shapes.pool_output_shape(s, 2)  # stride defaults to the window
  assert s == (1, 16, 16, 20)
  assert shapes.conv_param_count(3, 3, 10) == 3 * 3 * 3 * 10 + 10
  assert shapes.conv_param_count(5, 10, 20) == 5 * 5 * 10 * 20 + 20


@pytest.mark.parametrize("n,f,p,s,expected", [
    (32, 5, 2, 1, 32), (7, 3, 0, 2, 3), (7, 3, 1, 2, 4), (227, 11, 0, 4, 55), (5, 5, 0, 1, 1),
    (6, 3, 0, 2, 2),  # (6 - 3) / 2 + 1 = 2.5: the last, partial window is dropped (floor)
])
def test_output_size_is_the_course_formula(n, f, p, s, expected):
  # out = (W - F + 2P) / S + 1, floored.
  assert shapes.output_size(n, f, s, (p, p)) == expected
  assert shapes.conv_output_shape((1, n, 1), f, 1, stride=s, padding=p) == (1, expected, 1)


def test_output_size_with_dilation():
  # A 3-tap kernel with dilation 2 spans 5 cells.
  assert shapes.effective_kernel_size(3, 2) == 5
  assert shapes.output_size(9, 3, 1, (0, 0), 2) == 5
  assert shapes.conv_output_shape((2, 9, 9, 1), 3, 4, dilation=(2, 1)) == (2, 5, 7, 4)


@pytest.mark.parametrize("padding,size,kernel,stride,dilation,expected", [
    ("VALID", (5,), (3,), (1,), None, ((0, 0),)),
    ("valid", (5, 6), (3, 2), (2, 1), None, ((0, 0), (0, 0))),
    ("SAME", (5,), (3,), (1,), None, ((1, 1),)),
    ("same", (5,), (3,), (2,), None, ((1, 1),)),
    ("SAME", (4,), (3,), (2,), None, ((0, 1),)),  # odd total: the extra cell goes last
    ("SAME", (6,), (4,), (1,), None, ((1, 2),)),  # even kernel
    ("SAME", (5,), (3,), (1,), (2,), ((2, 2),)),  # dilated span 5
    ("SAME", (7,), (1,), (3,), None, ((0, 0),)),
    ("SAME", (2,), (5,), (1,), None, ((2, 2),)),  # window larger than the input
    ("FULL", (5, 5), (3, 2), (1, 1), None, ((2, 2), (1, 1))),
    ("Full", (5,), (3,), (1,), (2,), ((4, 4),)),
    (2, (5, 5), (3, 3), (1, 1), None, ((2, 2), (2, 2))),
    (0, (5,), (3,), (1,), None, ((0, 0),)),
    ([1, (2, 3)], (5, 5), (3, 3), (1, 1), None, ((1, 1), (2, 3))),
    (((0, 1), (1, 0), 2), (4, 4, 4), (2, 2, 2), (1, 1, 1), None, ((0, 1), (1, 0), (2, 2))),
    (np.int64(1), (5,), (3,), (1,), None, ((1, 1),)),
    ([(np.int64(1), np.int32(2))], (5,), (3,), (1,), None, ((1, 2),)),
])
def test_resolve_padding(padding, size, kernel, stride, dilation, expected):
  pads = shapes.resolve_padding(padding, size, kernel, stride, dilation)
  assert pads == expected
  assert all(type(p) is int for pair in pads for p in pair)


def test_same_padding_agrees_with_lax_and_gives_ceil_n_over_stride():
  for size, k, s, d in itertools.product(range(1, 10), range(1, 5), range(1, 4), range(1, 3)):
    (pad,) = shapes.resolve_padding("SAME", (size,), (k,), (s,), (d,))
    k_eff = shapes.effective_kernel_size(k, d)
    assert [pad] == [tuple(p) for p in lax.padtype_to_pads((size,), (k_eff,), (s,), "SAME")]
    assert shapes.output_size(size, k, s, pad, d) == -(-size // s)


def test_full_padding_gives_n_plus_k_minus_1():
  for size, k in itertools.product(range(1, 6), range(1, 6)):
    (out,), _ = shapes.spatial_output_size((size,), (k,), (1,), "FULL")
    assert out == size + k - 1  # np.convolve(..., 'full')


def test_normalize_tuple():
  assert shapes.normalize_tuple(2, 3, "stride") == (2, 2, 2)
  assert shapes.normalize_tuple((1, 2), 2, "stride") == (1, 2)
  assert shapes.normalize_tuple([3], 1, "kernel_size") == (3,)
  assert shapes.normalize_tuple(0, 2, "padding", minimum=0) == (0, 0)
  # NumPy integers (e.g. from np.arange sweeps) are ints too, and come back as Python ints.
  out = shapes.normalize_tuple(np.int64(2), 2, "stride")
  assert out == (2, 2) and all(type(v) is int for v in out)
  assert shapes.normalize_tuple((np.int32(1), 2), 2, "stride") == (1, 2)


def test_pool_output_shape():
  assert shapes.pool_output_shape((1, 128, 128, 10), 4) == (1, 32, 32, 10)
  assert shapes.pool_output_shape((2, 7, 7, 3), 2) == (2, 3, 3, 3)           # floor
  assert shapes.pool_output_shape((2, 7, 7, 3), 2, padding="SAME") == (2, 4, 4, 3)
  assert shapes.pool_output_shape((2, 7, 7, 3), 3, stride=1) == (2, 5, 5, 3)
  assert shapes.pool_output_shape((1, 9, 4), 3, stride=2) == (1, 4, 4)
  assert shapes.pool_output_shape((1, 4, 6, 8, 2), (2, 3, 4)) == (1, 2, 2, 2, 2)


def test_conv_output_shape_1d_3d_and_batch():
  assert shapes.conv_output_shape((8, 100, 3), 5, 16, stride=2, padding="SAME") == (8, 50, 16)
  assert shapes.conv_output_shape((1, 8, 9, 10, 2), (3, 2, 1), 4, padding="FULL") == (
      1, 10, 10, 10, 4)
  assert shapes.conv_output_shape((4, 32, 32, 3), 3, 32, stride=2, padding=1) == (4, 16, 16, 32)


def test_conv_param_count():
  assert shapes.conv_param_count(3, 3, 32) == 896               # Keras Conv2D(32, 3) on RGB
  assert shapes.conv_param_count(3, 32, 64) == 18_496
  assert shapes.conv_param_count(3, 32, 64, use_bias=False) == 18_432
  assert shapes.conv_param_count((3, 3), 32, 64, groups=32) == 3 * 3 * 1 * 64 + 64
  assert shapes.conv_param_count(5, 4, 8, ndim=1) == 5 * 4 * 8 + 8
  assert shapes.conv_param_count((2, 3, 4), 2, 6, groups=2) == 24 * 1 * 6 + 6


BAD_CALLS = [
    ("stride 0", lambda: shapes.normalize_tuple(0, 2, "stride"), r"`stride` \(=0\) must be >= 1"),
    ("stride -1", lambda: shapes.normalize_tuple((1, -1), 2, "stride"),
     r"`stride` \(=\(1, -1\)\) must be >= 1"),
    ("wrong length", lambda: shapes.normalize_tuple((1, 2, 3), 2, "stride"),
     r"`stride` \(=\(1, 2, 3\)\) must have one entry per spatial dimension \(2\)"),
    ("float", lambda: shapes.normalize_tuple(1.5, 2, "stride"), r"got 1.5"),
    ("float entry", lambda: shapes.normalize_tuple((1, 2.0), 2, "dilation"), r"got \(1, 2.0\)"),
    ("bool", lambda: shapes.normalize_tuple(True, 2, "stride"), r"got True"),
    ("unknown padding", lambda: shapes.resolve_padding("HALF", (5,), (3,), (1,)),
     r"unknown padding 'HALF'"),
    ("negative padding", lambda: shapes.resolve_padding(-2, (5,), (3,), (1,)),
     r"padding \(=-2\) must be >= 0"),
    ("padding entries", lambda: shapes.resolve_padding([1, 2, 3], (5, 5), (3, 3), (1, 1)),
     r"one entry per spatial dimension \(2\), got 3"),
    ("padding triple", lambda: shapes.resolve_padding([(1, 2, 3)], (5,), (3,), (1,)),
     r"padding entry \(1, 2, 3\)"),
    ("negative pair", lambda: shapes.resolve_padding([(1, -1)], (5,), (3,), (1,)),
     r"negative entry \(1, -1\)"),
    ("bool padding", lambda: shapes.resolve_padding(True, (5,), (3,), (1,)), r"got True"),
    ("window too large", lambda: shapes.conv_output_shape((1, 4, 4, 1), 5, 1),
     r"kernel of size 5 is larger than the padded input 4 \(size 4, padding \(0, 0\)\) in "
     r"spatial dimension 0"),
    ("dilated window", lambda: shapes.conv_output_shape((1, 8, 4, 1), 3, 1, dilation=2),
     r"kernel of size 3 \(dilated span 5\) is larger than the padded input 4 .*dimension 1"),
    ("pool window", lambda: shapes.pool_output_shape((1, 4, 4, 1), 5),
     r"pooling window of size 5 is larger than the padded input 4"),
    ("input rank", lambda: shapes.conv_output_shape((4, 4), 3, 1), r"got \(4, 4\) \(rank 2\)"),
    ("input dim", lambda: shapes.pool_output_shape((1, 0, 4, 1), 2),
     r"input shape \(1, 0, 4, 1\) has a non-positive"),
    ("groups", lambda: shapes.conv_param_count(3, 3, 8, groups=2),
     r"`in_channels` \(=3\) and `features` \(=8\) must be divisible by `groups` \(=2\)"),
]


@pytest.mark.parametrize("call,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise_value_error_naming_the_value(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_arithmetic_doctests():
  # The examples in the arithmetic functions' docstrings (`summary` is tested in test_summary.py).
  runner = doctest.DocTestRunner()
  tests = [t for t in doctest.DocTestFinder().find(shapes)
           if t.examples and "summary" not in t.name.lower()]
  for test in tests:
    runner.run(test)
  assert len(tests) >= 5 and runner.failures == 0, runner.summarize()
