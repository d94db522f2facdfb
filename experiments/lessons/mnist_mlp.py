"""Lesson 6, the MNIST MLP with a validation split and "save the model whenever the validation
loss decreases" (the course's PyTorch MLP notebook, with the Keras MLP and Adam).

    python -m experiments.lessons mnist_mlp --image-folder ../shared/data/mnist_png_train.tar.gz
    python -m experiments.lessons mnist_mlp --quick

The Keras MNIST MLP (``mlp``: Flatten - Dense(512, relu) - Dropout(0.2) - Dense(512, relu) -
Dropout(0.2) - Dense(10), 669,706 parameters), Adam 1e-3, batch 128, 10 epochs, on three
disjoint splits carved from the MNIST training set (the PNG copy has no test split):
``train[:48000]`` to train, ``train[48000:54000]`` to validate (choose the epoch), and
``train[54000:]`` held out as the *test* split (6,000 images, looked at once, at the end).
After every epoch whose validation loss is the lowest so far, the parameters are written to
``OUT/model_best.msgpack`` (``jaxcnn.train.SaveBest``, a ``fit`` callback like Keras'
``ModelCheckpoint(save_best_only=True)``); at the end that file is loaded back, its
validation loss checked equal to the best epoch's, and it is tested. ``--quick``: 3 epochs on
512/256/256 synthetic images.

Prints each "validation loss decreased (a -> b): saving model" line, the notes' ``model.eval()``
point (two passes in training mode, dropout on, disagree; two in evaluation mode agree), the
test accuracy overall and per class ("Test accuracy of 3: 97.5% (588/603)"), and draws the curves with the saved
epochs marked and a grid of test predictions, titles green when right and red when wrong.

Measured (full run on the PNG copy, seed 0, 1 run; 92 s on a 2-core CPU shared with another
lesson run, load about 6): the model was saved after epochs 1, 2, 3 and 5 (validation loss
0.1057 -> 0.0790 -> 0.0679 -> 0.0667); epochs 6-10 kept lowering the training loss (0.047 ->
0.033) while the validation loss rose again (0.068-0.087), so the saved model is epoch 5's. On
the held-out test split it scores 97.92% (5,875 / 6,000; loss 0.0869), per class from 97.0%
(digit 5, 526 / 542) to 99.7% (digit 0, 590 / 592).
"""

from __future__ import annotations

import pathlib

import numpy as np
import optax

from experiments.lessons import _common
from jaxcnn import inspect, metrics, plots
from jaxcnn.models import get_model
from jaxcnn.train import Callback, SaveBest, evaluate, fit, predict

TITLE = "MNIST MLP: validation split, save the best model, test accuracy per class"
LESSON = 6
TRAINS = True
SPLITS = {"train": "train[:48000]", "validation": "train[48000:54000]", "test": "train[54000:]"}


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Trains the MLP, saving it whenever the validation loss falls, then tests the saved one."""
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  sizes = {"train": 512, "validation": 256, "test": 256}
  data = {k: _common.load_split("mnist", split, image_folder=image_folder, quick=quick,
                                quick_size=sizes[k], seed=seed) for k, split in SPLITS.items()}
  for k, (x, _) in data.items():
    print(f"{k:10} {SPLITS[k]:20} {len(x):6,} images")
  model = get_model("mlp")
  params = inspect.summary(model, (1, 28, 28, 1), print_fn=None).total_params
  print(f"mlp: {params:,} parameters, hidden layers {tuple(model.hidden)} (the notes' quiz Q2: "
        "'one or two hidden layers should work fine'; this MLP has two)")
  results["params"] = params

  # The course's "save the model whenever the validation loss decreases": jaxcnn.train.SaveBest
  # (Keras' ModelCheckpoint(save_best_only=True)), and a callback that prints as the course does.
  save_best = SaveBest(out / "model_best.msgpack")

  class Report(Callback):
    def on_epoch_end(self, epoch, logs, state):
      print(f"epoch {epoch:2}: training loss {logs['loss']:.6f}  "
            f"validation loss {logs['val_loss']:.6f}")
      saves = save_best.saves
      if saves and saves[-1][0] == epoch:
        before = saves[-2][1] if len(saves) > 1 else float("inf")
        print(f"  validation loss decreased ({before:.6f} -> {saves[-1][1]:.6f}): "
              f"saving model to {save_best.path.name}")

  epochs = 3 if quick else 10
  history = fit(model, data["train"], validation_data=data["validation"], epochs=epochs,
                batch_size=128, seed=seed, optimizer=optax.adam(1e-3), verbose=0,
                callbacks=[save_best, Report()])
  saves = save_best.saves
  best_epoch, best_loss = saves[-1]
  assert best_loss == min(history["val_loss"]) and len(saves) >= 1

  # Load the saved model back (what a later session would do) and check it is the best epoch's.
  state = SaveBest.load(save_best.path, history.state)
  val = evaluate(state, data["validation"])
  np.testing.assert_allclose(val["loss"], best_loss, rtol=1e-5)
  print(f"loaded {save_best.path.name} (epoch {best_epoch}): validation loss {val['loss']:.6f}")

  x_test, y_test = data["test"]
  eval_mode_check(model, state.params, x_test[:64], seed, results)
  test = evaluate(state, data["test"])
  logits = predict(state, x_test)
  pred = logits.argmax(-1)
  conf = np.asarray(metrics.confusion_matrix(y_test, pred, 10))
  np.testing.assert_array_equal(conf, np.asarray(test["confusion"]))
  print(f"test loss {test['loss']:.6f}")
  per_class = metrics.per_class_accuracy(conf)
  for c in range(10):
    n, right = int(conf[c].sum()), int(conf[c, c])
    print(f"Test accuracy of {c}: {100 * per_class[c]:5.1f}% ({right:4d}/{n:4d})")
    results[f"test_accuracy_{c}"] = float(per_class[c])
  acc = float(np.trace(conf) / conf.sum())
  print(f"Test accuracy (overall): {100 * acc:.2f}% ({int(np.trace(conf))}/{int(conf.sum())})")
  results.update(epochs=epochs, saves=len(saves), best_epoch=best_epoch,
                 best_val_loss=best_loss, test_loss=float(test["loss"]), test_accuracy=acc,
                 test_count=int(conf.sum()))

  fig = plots.plot_curves(history)
  for ax in fig.axes:
    for e, _ in saves:
      ax.axvline(e, color="0.6", lw=0.8, ls=":")
  fig.axes[0].plot([e for e, _ in saves], [l for _, l in saves], "v", color="#2a7d2a",
                   ms=8, label="saved (new lowest validation loss)")
  fig.axes[0].legend()
  fig.suptitle(f"MLP on MNIST: {len(saves)} saves, best epoch {best_epoch}")
  _common.save(fig, out, "curves.png",
               "Training and validation loss (left) and accuracy (right) per epoch; a green "
               "triangle (and dotted line) marks each epoch whose validation loss was the "
               "lowest so far, when the model was saved. Once the validation loss stops "
               "falling while the training loss keeps going down, later epochs are not saved: "
               "the saved model is the one from before overfitting.", figures)

  shown = np.arange(min(40, len(x_test)))
  fig = plots.image_grid(x_test[shown], [f"{pred[i]} ({y_test[i]})" for i in shown], ncols=10,
                         cell=1.1, suptitle="test predictions: predicted (true); green right, "
                                            "red wrong")
  for ax, i in zip(fig.axes, shown):
    ax.title.set_color("#2a7d2a" if pred[i] == y_test[i] else "#c00000")
    ax.title.set_fontweight("bold")
  _common.save(fig, out, "predictions.png",
               "The first 40 test images with the saved model's prediction and, in brackets, "
               "the true digit: green when right, red when wrong. The wrong ones are often "
               "digits a person would hesitate over too.", figures)

  wrong = np.flatnonzero(pred != y_test)[:20]
  results["test_wrong"] = int(np.sum(pred != y_test))
  if len(wrong):
    fig = plots.image_grid(x_test[wrong], [f"{pred[i]} ({y_test[i]})" for i in wrong],
                           ncols=10, cell=1.1,
                           suptitle="misclassified test digits: predicted (true)")
    for ax in fig.axes:
      ax.title.set_color("#c00000")
    _common.save(fig, out, "mistakes.png",
                 "Up to 20 test digits the saved model got wrong: predicted (true).", figures)
  return {"figures": figures, "results": results}


def eval_mode_check(model, params, x: np.ndarray, seed: int, results: dict) -> None:
  """The notes' ``model.eval()``: dropout is on while training and off for evaluation. Two
  training-mode passes (dropout 0.2, different keys) disagree; evaluation-mode passes agree."""
  import jax  # pylint: disable=g-import-not-at-top

  variables = {"params": params}
  train_a, train_b = (np.asarray(model.apply(variables, x, train=True,
                                             rngs={"dropout": jax.random.key(seed + i)}))
                      for i in (1, 2))
  eval_a, eval_b = (np.asarray(model.apply(variables, x, train=False)) for _ in range(2))
  train_diff = float(np.abs(train_a - train_b).max())
  assert train_diff > 0 and np.array_equal(eval_a, eval_b)
  agree = float(np.mean(train_a.argmax(-1) == eval_a.argmax(-1)))
  print(f"model.train() vs model.eval() on {len(x)} test digits: two training-mode passes "
        f"(dropout 0.2 on) differ by up to {train_diff:.3f} in a logit; two evaluation-mode "
        f"passes are identical; training mode and evaluation mode pick the same digit for "
        f"{100 * agree:.0f}% of them")
  results["train_mode_max_logit_diff"] = train_diff
