"""Tests of jaxcnn.metrics against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import metrics

LOGITS = jnp.array([[3.0, 2.0, 1.0, 0.0],    # label 0: top-1
                    [0.0, 1.0, 3.0, 2.0],    # label 1: rank 3 (top-3, not top-2)
                    [1.0, 1.0, 0.0, 0.0],    # label 1: tied with class 0, which wins -> top-2
                    [0.0, 0.0, 0.0, 5.0]])   # label 2: behind 3, and behind tied 0, 1 -> top-4
LABELS = jnp.array([0, 1, 1, 2])


def test_accuracy_and_top_k_by_hand():
  # argmax picks the first maximum: row 2 predicts class 0 -> top-1 accuracy 1/4.
  assert float(metrics.accuracy(LOGITS, LABELS)) == 0.25
  np.testing.assert_array_equal(metrics.top_k_correct(LOGITS, LABELS, 1), [1, 0, 0, 0])
  np.testing.assert_array_equal(metrics.top_k_correct(LOGITS, LABELS, 2), [1, 0, 1, 0])
  np.testing.assert_array_equal(metrics.top_k_correct(LOGITS, LABELS, 3), [1, 1, 1, 0])
  np.testing.assert_array_equal(metrics.top_k_correct(LOGITS, LABELS, 4), [1, 1, 1, 1])
  assert float(metrics.top_k_accuracy(LOGITS, LABELS, k=2)) == 0.5
  with pytest.raises(ValueError, match=r"\(=0\)"):
    metrics.top_k_correct(LOGITS, LABELS, 0)


def test_mask_excludes_padding():
  mask = jnp.array([1.0, 1.0, 0.0, 0.0])
  assert float(metrics.accuracy(LOGITS, LABELS, mask)) == 0.5
  assert float(metrics.top_k_accuracy(LOGITS, LABELS, 3, mask)) == 1.0


def test_confusion_matrix_rows_are_true_classes():
  preds = jnp.array([0, 2, 0, 3])
  cm = metrics.confusion_matrix(LABELS, preds, 4)
  expected = np.zeros((4, 4), int)
  for t, p in [(0, 0), (1, 2), (1, 0), (2, 3)]:
    expected[t, p] += 1
  np.testing.assert_array_equal(cm, expected)
  masked = metrics.confusion_matrix(LABELS, preds, 4, jnp.array([1.0, 0.0, 1.0, 0.0]))
  assert int(masked.sum()) == 2 and int(masked[1, 2]) == 0


def test_sums_accumulate_to_the_full_batch_metrics_under_jit():
  losses = jnp.array([0.5, 1.5, 2.0, 4.0])
  sums_fn = jax.jit(lambda lg, lb, ls, m: metrics.classification_sums(lg, lb, ls, mask=m))
  acc = metrics.Accumulator()
  # Two halves, the second padded to the same shape with a mask.
  acc.add_sums(jax.device_get(sums_fn(LOGITS[:2], LABELS[:2], losses[:2], jnp.ones(2))))
  acc.add_sums(jax.device_get(sums_fn(LOGITS[2:], LABELS[2:], losses[2:], jnp.ones(2))))
  pad = metrics.Accumulator()
  pad.add_sums(jax.device_get(sums_fn(LOGITS, LABELS, losses, jnp.ones(4))))
  pad.add_sums(jax.device_get(sums_fn(LOGITS, LABELS, losses, jnp.zeros(4))))  # all padding
  for result in (acc.compute(), pad.compute()):
    assert result["loss"] == pytest.approx(2.0)
    assert result["accuracy"] == pytest.approx(0.25)
    assert result["top5"] == pytest.approx(1.0)
    assert result["count"] == 4 and result["confusion"].sum() == 4


def test_accumulator_weighted_means_and_state_dict_round_trip():
  acc = metrics.Accumulator()
  acc.add_means({"loss": 2.0, "accuracy": 0.5}, weight=1)
  acc.add_means({"loss": 1.0, "accuracy": 1.0}, weight=3)
  restored = metrics.Accumulator.from_state_dict(acc.state_dict())
  for a in (acc, restored):
    out = a.compute()
    assert out["loss"] == pytest.approx(1.25) and out["accuracy"] == pytest.approx(0.875)
  with pytest.raises(ValueError, match="count"):
    acc.add_sums({"loss": 1.0})


def test_top_k_ties_go_to_the_first_index_like_argmax():
  from jaxcnn import metrics
  logits = jnp.zeros((4, 10))  # a dead model: every class tied
  labels = jnp.array([0, 3, 4, 9])
  np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, 5), [1, 1, 1, 0])
  np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, 1), [1, 0, 0, 0])
  assert float(metrics.accuracy(logits, labels)) == 0.25  # k=1 agrees with argmax
  nan = jnp.full((2, 10), jnp.nan)
  np.testing.assert_array_equal(metrics.top_k_correct(nan, jnp.array([0, 5]), 5), [0, 0])


def test_top_k_against_a_sort_on_random_logits():
  from jaxcnn import metrics
  rng = np.random.default_rng(0)
  logits = rng.integers(0, 4, (64, 10)).astype(np.float32)  # many ties
  labels = rng.integers(0, 10, 64)
  for k in (1, 3, 5):
    # Reference: a stable sort by descending logit (ties: lower index first), label in top k.
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    expected = (order == labels[:, None]).any(axis=1)
    np.testing.assert_array_equal(metrics.top_k_correct(jnp.asarray(logits), jnp.asarray(labels), k),
                                  expected.astype(np.float32))


def test_rank_1_logits_are_refused():
  # Before: accuracy of a lone [K] row against a scalar label returned a number.
  for fn in (metrics.accuracy, lambda l, y: metrics.top_k_accuracy(l, y, k=2)):
    with pytest.raises(ValueError, match=r"`logits` \[B, K\] and `labels` \[B\], got shapes "
                       r"\(4,\) and \(\); for one example add the batch axis"):
      fn(LOGITS[0], LABELS[0])


def test_top_k_larger_than_the_number_of_classes_is_refused():
  # Before: k=20 of 4 classes read 1.0 whatever the logits. (classification_sums clips its own
  # top_k to K on purpose, and still works.)
  with pytest.raises(ValueError, match=r"^`k` \(=20\) must be <= the number of classes \(4\)$"):
    metrics.top_k_accuracy(LOGITS, LABELS, k=20)
  for k in (0, 2.5, "2"):
    with pytest.raises(ValueError, match=rf"^`k` \(={k!r}\) must be an int >= 1$"):
      metrics.top_k_accuracy(LOGITS, LABELS, k=k)
  assert float(metrics.top_k_accuracy(LOGITS, LABELS, k=4)) == 1.0
  sums = jax.jit(lambda l, y: metrics.classification_sums(l, y, jnp.zeros(4), top_k=5))(
      LOGITS, LABELS)
  assert float(sums["top5"]) == 4.0


def test_out_of_range_labels_raise_on_the_host_and_are_not_misfiled_under_jit():
  # Before: label 10 of 10 classes was dropped silently, and label 1 with prediction 10 landed in
  # row 2 (flat index 1 * 10 + 10).
  with pytest.raises(ValueError, match=r"^`labels` must be in \[0, 10\) for 10 classes, got 10 at "
                     r"index 1 \(1 out of range\)$"):
    metrics.confusion_matrix(np.asarray([1, 10]), np.asarray([1, 2]), 10)
  with pytest.raises(ValueError, match=r"^`predictions` must be in \[0, 3\) .* got -1 at index 0"):
    metrics.confusion_matrix(np.asarray([1]), np.asarray([-1]), 3)
  with pytest.raises(ValueError, match=r"^`labels` must be in \[0, 4\) .* got 4 at index 3"):
    metrics.accuracy(LOGITS, jnp.array([0, 1, 1, 4]))
  for n in (0, 2.5):
    with pytest.raises(ValueError, match=rf"^`num_classes` \(={n!r}\) must be an int >= 1$"):
      metrics.confusion_matrix(np.asarray([0]), np.asarray([0]), n)
  m = jax.jit(lambda y, p: metrics.confusion_matrix(y, p, 3))(jnp.array([0, 1, 2, 3, 1]),
                                                              jnp.array([0, 1, 2, 0, 3]))
  np.testing.assert_array_equal(m, np.eye(3, dtype=np.int32))  # the two bad pairs: not counted


def test_per_class_accuracy_reads_the_rows_of_a_confusion_matrix():
  labels = jnp.array([0, 0, 0, 0, 1, 1, 2])
  preds = jnp.array([0, 0, 0, 1, 1, 0, 2])
  acc = metrics.per_class_accuracy(metrics.confusion_matrix(labels, preds, 4))
  np.testing.assert_allclose(acc[:3], [0.75, 0.5, 1.0])
  assert np.isnan(acc[3])  # no example of class 3
  with pytest.raises(ValueError, match=r"square \[K, K\].*\(2, 3\)"):
    metrics.per_class_accuracy(np.zeros((2, 3)))
