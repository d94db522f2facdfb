"""Lesson 10, seeing what a CNN learned: activation maximisation and attributions (the course
notes' "Visualizing CNNs": Zeiler and Fergus, deep dream), on the trained Keras CIFAR-10 CNN of
lesson 5b (``filters_and_maps``, the "Convolutional networks" notebook's net; reused from its
cache, trained there first if absent).

    python -m experiments.lessons what_cnns_learn --image-folder ../shared/data/cifar10_jpeg_train.tar.gz
    python -m experiments.lessons what_cnns_learn --quick

The net takes images scaled to [0, 1], as the notebook feeds it. All from
:mod:`jaxcnn.inspect`, drawn with :mod:`jaxcnn.plots`:

* activation maximisation (:func:`~jaxcnn.inspect.maximize_activation`: Adam on the input, with
  jitter and a total-variation smoothness prior) for the first filters of each conv layer (the
  mean of the layer's pre-activation channel), once with a pixel parameterisation and once with
  a Fourier / decorrelated-colour one, seeded; the objective before and after is printed;
* the same for the ten class *logits* (not the probabilities: raising a probability can be done
  by lowering the other classes);
* for validation images, the attributions of the predicted class's logit: saliency (the input
  gradient), SmoothGrad, integrated gradients (completeness printed: the attributions sum to
  ``logit(x) - logit(0)``), Grad-CAM at two depths (``Conv_1`` at 13x13 and ``Conv_2`` at 4x4),
  occlusion sensitivity (6x6 grey-zero patches, stride 2, batched with ``vmap``) and guided
  backpropagation and the deconvnet view (ReLU backward passes replaced via ``custom_vjp``).

Full run: 128 ascent steps, 6 filters per layer, 3 images; ``--quick``: 24 steps, 2 filters, 2
classes, 1 image, on lesson 5b's quick net.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lessons import _common
from experiments.lessons import filters_and_maps
from jaxcnn import inspect, plots

TITLE = "What a CNN learned: activation maximisation, saliency, Grad-CAM, occlusion"
LESSON = 10
TRAINS = True
CLASSES = _common.CIFAR10_CLASSES


def _a(noun: str) -> str:
  """``noun`` with its indefinite article ('an airplane', 'a cat')."""
  return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Visualises the trained lesson-5 net's filters and logits and attributes its decisions."""
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  model, params, history, (x_val, y_val), _, cached = filters_and_maps.trained(quick, seed,
                                                                               image_folder)
  print(f"tutorial_cnn from lesson 5b: {'loaded the cached' if cached else 'trained a'} net "
        f"(validation accuracy {history['val_accuracy'][-1]:.4f})")
  variables = {"params": params}
  preprocess = None  # the net takes [0, 1] images, what maximize_activation optimises
  steps = 24 if quick else 128
  n_filters = 2 if quick else 6
  key = jax.random.key(seed)

  # --- activation maximisation, each conv layer, pixel vs Fourier
  convs = [k for k in sorted(params) if k.startswith("Conv")]
  images, titles, gains = [], [], []
  print(f"activation maximisation ({steps} Adam steps, jitter 2 px, smoothness prior): the "
        "mean pre-activation of a filter, before -> after")
  for name in convs:
    for param in ("pixel", "fourier"):
      for ch in range(n_filters):
        vis = inspect.maximize_activation(
            model, variables, (32, 32, 3), channel=ch, key=jax.random.fold_in(key, ch),
            layer=f"{name}/pre_activation", steps=steps, parameterization=param,
            preprocess=preprocess, learning_rate=0.05)
        obj = np.asarray(vis.objective)
        print(f"  {name} filter {ch} {param:7}: {obj[0]:+8.3f} -> {obj[-1]:+8.3f}")
        gains.append(obj[-1] - obj[0])
        images.append(np.asarray(vis.image))
        titles.append(f"{name} f{ch} {param}\n{obj[0]:+.2f} -> {obj[-1]:+.2f}")
  results["filters_visualised"] = len(gains)
  results["filters_objective_increased"] = int(np.sum(np.asarray(gains) > 0))
  fig = plots.image_grid(np.stack(images), titles, ncols=n_filters, cell=1.55,
                         suptitle="inputs maximising a filter\n(objective before -> after)")
  _common.save(fig, out, "filters_maximised.png",
               "For each conv layer (two rows each: pixel, then Fourier parameterisation), the "
               "input that most excites each of its first filters. Conv_0's are flat colours or "
               "colour blobs (a 3x3 filter sees too little for more); deeper layers' are "
               "stripes, textures and repeated patterns. The pixel "
               "parameterisation tends to high-frequency noise; the Fourier one, which learns "
               "every frequency at a similar rate, gives smoother, more readable patterns.",
               figures)

  # --- class logits
  classes = range(2) if quick else range(10)
  images, titles = [], []
  print("class logit maximisation (Fourier parameterisation):")
  for c in classes:
    vis = inspect.maximize_activation(model, variables, (32, 32, 3), channel=c,
                                      key=jax.random.fold_in(key, 100 + c), steps=steps,
                                      parameterization="fourier", preprocess=preprocess)
    obj = np.asarray(vis.objective)
    print(f"  logit {c} ({CLASSES[c]:10}): {obj[0]:+8.3f} -> {obj[-1]:+8.3f}")
    results[f"logit_{CLASSES[c]}_gain"] = float(obj[-1] - obj[0])
    images.append(np.asarray(vis.image))
    titles.append(f"{CLASSES[c]}\nlogit {obj[0]:+.1f} -> {obj[-1]:+.1f}")
  fig = plots.image_grid(np.stack(images), titles, ncols=5, cell=1.9,
                         suptitle="inputs that maximise each class logit")
  _common.save(fig, out, "logits_maximised.png",
               "The input each class's logit likes best (Fourier parameterisation, smoothness "
               "prior). These are not pictures of the class: the logit rises far above any "
               "real image's with colours and textures the class correlates with (blue-grey "
               "for ship and airplane, green-brown for frog and deer).", figures)

  # --- attributions for validation images
  logits = _common.logits(model, params, x_val)
  pred = logits.argmax(-1)
  picks = [int(i) for i in np.flatnonzero(pred == y_val)[:1 if quick else 3]] or [0]
  for n, i in enumerate(picks):
    x = jnp.asarray(x_val[i:i + 1])
    t = int(pred[i])
    ig = inspect.integrated_gradients(model, variables, x, t, steps=64 if quick else 256)
    f = lambda z: model.apply(variables, z)[0, t]
    completeness = float(jnp.sum(ig) - (f(x) - f(jnp.zeros_like(x))))
    occl = inspect.occlusion(model, variables, x, t, patch=6, stride=2)
    maps = {
        "saliency |grad|": inspect.saliency(model, variables, x, t)[0],
        "SmoothGrad": inspect.smoothgrad(model, variables, x, t, key=jax.random.fold_in(key, i),
                                         num_samples=8 if quick else 32)[0],
        "integrated gradients": ig[0],
        "Grad-CAM Conv_1 (13x13)": inspect.grad_cam(model, variables, x, "Conv_1", t)[0],
        "Grad-CAM Conv_2 (4x4)": inspect.grad_cam(model, variables, x, "Conv_2", t)[0],
        "occlusion 6x6 (logit drop)": jnp.maximum(occl[0], 0),
        "guided backprop": inspect.guided_backprop(model, variables, x, t)[0],
        "deconvnet": inspect.guided_backprop(model, variables, x, t, mode="deconvnet")[0],
    }
    print(f"validation image {i} ({CLASSES[y_val[i]]}), predicted {CLASSES[t]} (logit "
          f"{float(f(x)):.3f}): integrated gradients sum - (logit(x) - logit(0)) = "
          f"{completeness:+.2e}; occlusion: largest logit drop {float(occl.max()):.3f} "
          f"over {occl.shape[1]}x{occl.shape[2]} patch positions")
    if n == 0:
      results["ig_completeness_error"] = abs(completeness)
      results["occlusion_positions"] = int(occl.shape[1] * occl.shape[2])
    fig = plots.attribution_overlay(x_val[i],
                                    {k: np.asarray(v) for k, v in maps.items()},
                                    suptitle=f"validation image {i}: {_a(CLASSES[y_val[i]])}, "
                                             f"predicted {CLASSES[t]}; what raised that logit")
    _common.save(fig, out, f"attributions_{n}.png",
                 f"What made the net say '{CLASSES[t]}' for this {CLASSES[y_val[i]]}, eight "
                 "ways (brighter = more, each map on its own scale). The gradient maps "
                 "(saliency, SmoothGrad, integrated gradients, guided backprop, deconvnet) are "
                 "pixel-sharp and speckled; SmoothGrad averages the gradient over noisy copies. "
                 "Grad-CAM is coarse, more so at the deeper 4x4 layer, and can light up context "
                 "(road, sky) as well as the object; occlusion measures directly how much the "
                 "logit falls when a 6x6 patch is hidden.", figures)
  return {"figures": figures, "results": results}
