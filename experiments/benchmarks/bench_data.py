"""Input-pipeline throughput (images/s) beside the tutorial CNN's training-step rate.

Answers: is the input pipeline ever the bottleneck? Rows, all on the same machine and
invocation, medians over ``--repeats``:
  * folder source, cold: decode the JPEG/PNG tarball with PIL on threads (no cache);
  * folder source, cached: the same split loaded from the ``.npz`` cache;
  * tf.data stream (StreamLoader): shuffle + batch + prefetch on the host, crop+flip+normalise
    jitted on the device;
  * device-resident loader (DeviceLoader): gather + crop+flip + normalise in one jit;
  * training step of ``tutorial_cnn`` (forward + backward + SGD update), the consumer.

Run (the lead, in a quiet window):
    python experiments/benchmarks/bench_data.py                       # 50,000 CIFAR-10 images
    python experiments/benchmarks/bench_data.py --num-images 2000 --repeats 2 --steps 5   # smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxcnn import data  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                            "cifar10_jpeg_train.tar.gz")


def _median_rate(fn, images_per_call: int, repeats: int) -> tuple[float, float]:
  """(median images/s, median seconds) of ``fn()`` over ``repeats`` timed calls (after a warm-up)."""
  fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  med = statistics.median(times)
  return images_per_call / med, med


def drain(loader, steps: int, epoch: int = 0) -> None:
  """Takes ``steps`` batches of ``loader``'s epoch ``epoch`` and waits until they are ready."""
  last = None
  for i, batch in enumerate(loader.epoch(epoch)):
    last = batch
    if i + 1 >= steps:
      break
  jax.block_until_ready(last)


def _train_step_rate(batch_size: int, steps: int, repeats: int):
  try:
    import optax  # pylint: disable=g-import-not-at-top
    from jaxcnn import models  # pylint: disable=g-import-not-at-top
    model = models.get_model("tutorial_cnn")
  except Exception as e:  # pylint: disable=broad-except  (the model may not exist yet)
    print(f"[skip] training-step row: {type(e).__name__}: {e}", file=sys.stderr)
    return None
  x = jnp.zeros((batch_size, 32, 32, 3), jnp.float32)
  y = jnp.zeros((batch_size,), jnp.int32)
  variables = model.init(jax.random.key(0), x, train=False)
  tx = optax.sgd(0.01, momentum=0.9)
  opt_state = tx.init(variables["params"])

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({**variables, "params": p}, x, train=False)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  state = [variables["params"], opt_state]

  def run():
    for _ in range(steps):
      state[0], state[1] = step(state[0], state[1], x, y)
    jax.block_until_ready(state[0])

  return _median_rate(run, steps * batch_size, repeats)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--data", default=DEFAULT_DATA, help="class-per-folder root or tarball")
  p.add_argument("--num-images", type=int, default=50_000, help="images decoded/streamed")
  p.add_argument("--batch-size", type=int, default=256)
  p.add_argument("--steps", type=int, default=50, help="batches per timed loader/train run")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--augment", default="crop,flip", help="comma-separated augmentation names")
  args = p.parse_args(argv)
  augment = tuple(a for a in args.augment.split(",") if a)
  split = f"train[:{args.num_images}]"
  info = data.DATASETS["cifar10"]
  rows = []

  # Folder source: cold decode (no cache) and cached .npz load. Cold decoding is slow, so it
  # runs min(repeats, 3) times.
  cold = []
  for _ in range(min(args.repeats, 3)):
    t0 = time.perf_counter()
    arrays = data.load_arrays("cifar10", split, image_folder=args.data, cache=False)
    cold.append(time.perf_counter() - t0)
  n = arrays["label"].shape[0]
  rows.append(("folder source, cold decode (PIL, threads)", n / statistics.median(cold),
               statistics.median(cold)))
  with tempfile.TemporaryDirectory() as cache_dir:
    data.read_image_folder(args.data, "train", cache=True, cache_dir=cache_dir)  # fills the cache
    rate, sec = _median_rate(
        lambda: data.load_arrays("cifar10", split, image_folder=args.data, cache_dir=cache_dir),
        n, args.repeats)
    rows.append(("folder source, cached .npz", rate, sec))

  steps = min(args.steps, n // args.batch_size)
  common = dict(shuffle=True, seed=0, augment=augment, mean=info.mean, std=info.std)
  stream = data.StreamLoader(arrays, args.batch_size, **common)
  rate, sec = _median_rate(lambda: drain(stream, steps), steps * args.batch_size, args.repeats)
  rows.append((f"tf.data stream + {'+'.join(augment)} (StreamLoader)", rate, sec))
  device = data.DeviceLoader(arrays, args.batch_size, **common)
  rate, sec = _median_rate(lambda: drain(device, steps), steps * args.batch_size, args.repeats)
  rows.append((f"device-resident + {'+'.join(augment)} (DeviceLoader)", rate, sec))

  train = _train_step_rate(args.batch_size, steps, args.repeats)
  if train is not None:
    rows.append(("training step, tutorial_cnn (fwd+bwd+SGD)", *train))
  ref = train[0] if train is not None else None

  dev = jax.devices()[0]
  print(f"\n## Input pipeline throughput: {dev.platform} ({dev.device_kind}), "
        f"{os.cpu_count()} CPU cores, batch {args.batch_size}, {n} images, "
        f"median of {args.repeats}\n")
  print("| what | images/s | median s | x training step |")
  print("| --- | ---: | ---: | ---: |")
  for name, rate, sec in rows:
    ratio = f"{rate / ref:.1f}" if ref else "n/a"
    print(f"| {name} | {rate:,.0f} | {sec:.3f} | {ratio} |")
  print(f"\ncommand: python experiments/benchmarks/bench_data.py {' '.join(argv or sys.argv[1:])}")


if __name__ == "__main__":
  main()
