"""The Keras CIFAR-10 tutorial CNN, in Keras 3 on TensorFlow (CPU), a peer for BENCHMARKS.md.

The tutorial as written (https://www.tensorflow.org/tutorials/images/cnn), on the shared arrays
and split of `experiments/peers/__init__.py`: inputs x / 255 in [0, 1], Keras' default
initialisers (glorot_uniform kernels, zero biases), `Adam(1e-3)` with Keras' defaults (beta1 0.9,
beta2 0.999, eps 1e-7), sparse categorical cross-entropy from logits, `model.fit(batch_size=32,
validation_data=..., shuffle=True)`. On a CPU-only machine Keras' `jit_compile='auto'` resolves to
no XLA (a traced tf.function run by the TF executor); `--jit-compile` turns XLA on.

Run (from the repo root):
  python -m experiments.peers.keras_cifar10_tutorial --out runs/peers/keras_cifar10.json
Quick check:
  python -m experiments.peers.keras_cifar10_tutorial --epochs 1 --limit 2000 --out /tmp/k.json
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from experiments import peers  # noqa: E402


def tutorial_cnn(keras, num_classes: int = 10):
  """The tutorial CNN on NHWC `[B, 32, 32, 3]` float32 -> logits `[B, num_classes]`."""
  layers = keras.layers
  return keras.Sequential([
    keras.Input((32, 32, 3)),
    layers.Conv2D(32, 3, activation='relu'), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation='relu'), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation='relu'),
    layers.Flatten(), layers.Dense(64, activation='relu'), layers.Dense(num_classes),
  ])


def main(argv: list[str] | None = None) -> dict:
  parser = peers.add_common_flags(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
  parser.add_argument('--jit-compile', action='store_true',
                      help="compile the train step with XLA (default: Keras' 'auto' = off on CPU)")
  args = parser.parse_args(argv)

  import tensorflow as tf
  if args.threads is not None:  # an extra row only: by default Keras runs as its users run it
    # Must precede any TF op; intra = threads inside an op, inter = ops run side by side.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  import keras

  train, val, data_info = peers.load_train_val(args)
  # The tutorial's `train_images / 255.0` (float32 here rather than numpy's float64: same values
  # once Keras casts them to the float32 model).
  x_train = train['image'].astype('float32') / 255.0
  x_val = val['image'].astype('float32') / 255.0
  y_train, y_val = train['label'], val['label']
  n = len(y_train)

  keras.utils.set_random_seed(args.seed)
  model = tutorial_cnn(keras)
  num_params = model.count_params()
  if num_params != peers.RECIPE['num_params']:
    raise ValueError(f'model has {num_params} parameters, expected {peers.RECIPE["num_params"]}')
  r = peers.RECIPE
  model.compile(
    optimizer=keras.optimizers.Adam(r['learning_rate'], beta_1=r['beta1'], beta_2=r['beta2'],
                                    epsilon=r['eps']),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'],
    jit_compile=True if args.jit_compile else 'auto')

  class Timing(keras.callbacks.Callback):
    """Train and validation seconds per epoch, and the first step on its own.

    Only *_begin hooks are timed: overriding on_train_batch_end would switch off Keras' async
    callback dispatch and so change what is measured.
    """

    def __init__(self):
      super().__init__()
      self.epochs, self.first_step_seconds, self._t_step0 = [], None, None

    def on_train_begin(self, logs=None):
      self.t_train_begin = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
      self._t_epoch = time.perf_counter()
      self._t_test = None

    def on_train_batch_begin(self, batch, logs=None):
      if self.first_step_seconds is None:
        now = time.perf_counter()
        if self._t_step0 is None:
          self._t_step0 = now
        else:
          # Step 0 with tf.function tracing and graph optimisation: Keras' "compile".
          self.first_step_seconds = now - self._t_step0

    def on_test_begin(self, logs=None):
      if self._t_test is None and self._t_epoch is not None:
        self._t_test = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      now = time.perf_counter()
      t_test = self._t_test or now
      if self.first_step_seconds is None:  # a one-step epoch: its whole time is the first step
        self.first_step_seconds = t_test - self._t_step0
      train_seconds = t_test - self._t_epoch
      rec = {'epoch': epoch + 1, 'steps': self.params.get('steps'), 'train_seconds': train_seconds,
             'train_images_per_sec': n / train_seconds, 'train_loss': float(logs['loss']),
             'train_accuracy': float(logs['accuracy']), 'eval_seconds': now - t_test,
             'eval_loss': float(logs['val_loss']), 'eval_accuracy': float(logs['val_accuracy'])}
      self.epochs.append(rec)
      print(peers.epoch_line(rec), flush=True)

  timing = Timing()
  t0 = time.perf_counter()
  model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
            validation_data=(x_val, y_val), validation_batch_size=r['eval_batch_size'],
            shuffle=True, callbacks=[timing], verbose=0)
  fit_seconds = time.perf_counter() - t0
  print(f'first step (tf.function trace + graph build + run): {timing.first_step_seconds:.3f}s; '
        f'fit() set-up before training: {timing.t_train_begin - t0:.3f}s')

  record = {
    'framework': 'keras', 'keras': keras.__version__, 'tensorflow': tf.__version__,
    'backend': keras.backend.backend(), 'jit_compile': bool(model.jit_compile),
    'threads': ({'intra_op': args.threads, 'inter_op': args.threads} if args.threads is not None
                else 'TensorFlow defaults'), 'recipe': r,
    'normalisation': 'x / 255, no mean/std', 'init': 'Keras defaults: glorot_uniform, zeros',
    'adam_eps': r['eps'], 'num_params': num_params, 'seed': args.seed, 'epochs_requested': args.epochs,
    'first_step_seconds': timing.first_step_seconds,
    'fit_setup_seconds': timing.t_train_begin - t0, 'fit_seconds': fit_seconds,
    'epochs': timing.epochs, 'summary': peers.summarize(timing.epochs),
    'data': data_info, 'machine': peers.machine_info(),
  }
  peers.write_json(args.out, record)
  print(f'wrote {args.out}')
  return record


if __name__ == '__main__':
  main()
