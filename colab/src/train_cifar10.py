# %% [markdown]
# # Train CNNs on CIFAR-10 on whatever accelerator you have
#
# The course's tutorial CNN and a ResNet-20, trained with `jaxcnn.train.train_and_evaluate`:
# progress bars, one line per epoch, loss/accuracy curves, TensorBoard, and checkpoints that a
# re-run resumes from exactly. On a TPU or GPU the convolutions compute in bfloat16 (parameters
# stay float32). CIFAR-10 comes from the official archive (no TensorFlow needed); validation is
# the last 5,000 training images.

# %%
import pathlib

from jaxcnn import data, plots
from jaxcnn.configs import cifar10_tutorial, resnet20_cifar10
from jaxcnn.train import Checkpointer, evaluate, train_and_evaluate, validate
from jaxcnn.train.run import make_loaders

WORKDIR = pathlib.Path(os.environ.get("JAXCNN_NOTEBOOK_OUT", "runs")) / "train_cifar10"


def cifar10_config(module, epochs):
  config = module.get_config()
  config.num_epochs = epochs
  config.dtype = "float32" if BACKEND == "cpu" else "bfloat16"
  config.tensorboard = True  # scalars in WORKDIR/<run>/tensorboard, read by the cell below
  if QUICK:  # CI: a tiny folder copy of random images instead of the download, a few steps
    import numpy as np
    rng = np.random.default_rng(0)
    root = data.write_image_folder(
        WORKDIR / "tiny_cifar10", rng.integers(0, 256, (320, 32, 32, 3), dtype=np.uint8),
        np.arange(320) % 10, data.get_info("cifar10").class_names)
    config.data.image_folder = str(root)
    config.data.train_split, config.data.eval_split = "train[:256]", "train[256:]"
    config.batch_size, config.num_epochs = 32, 1
  return config


# %% [markdown]
# ## The tutorial CNN (10 epochs, Adam, batch 32)
# Re-running this cell resumes from the last checkpoint instead of starting over.

# %%
config = cifar10_config(cifar10_tutorial, epochs=10)
result = train_and_evaluate(config, WORKDIR / "tutorial_cnn")
plots.plot_curves(result.history)

# %% [markdown]
# ## TensorBoard
# The same numbers, live while a run trains (on Colab; elsewhere run
# `tensorboard --logdir runs/train_cifar10`).

# %%
if "google.colab" in sys.modules:
  %load_ext tensorboard
  %tensorboard --logdir {WORKDIR}
else:
  print("event files:", sorted(str(p.relative_to(WORKDIR)) for p in WORKDIR.rglob("events.out.tfevents*")))

# %% [markdown]
# ## The checkpoint, reloaded
# `checkpoints/best` holds the state of the epoch with the lowest validation loss. Restore it
# into a fresh state of the same shape and evaluate it: the accuracy matches the run's record.

# %%
ckpt = Checkpointer(WORKDIR / "tutorial_cnn" / "checkpoints")
restored, meta = ckpt.restore(result.state, best=True)
ckpt.close()
_, val = make_loaders(validate(config), data.get_info("cifar10"))  # the run's own validation loader
metrics = evaluate(restored, val)
best = min(result.history, key=lambda r: r["eval_loss"])
print(f"restored best checkpoint: validation accuracy {metrics['accuracy']:.4f} "
      f"(the run recorded {best['eval_accuracy']:.4f} at epoch {best['epoch']})")

# %% [markdown]
# ## ResNet-20 (He et al. 2016), crop + flip, SGD with a cosine schedule
# 30 epochs instead of the paper's 182, so that it fits a Colab session.

# %%
config = cifar10_config(resnet20_cifar10, epochs=30)
config.schedule = "cosine"
result = train_and_evaluate(config, WORKDIR / "resnet20")
plots.plot_curves(result.history)
