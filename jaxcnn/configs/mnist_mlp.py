"""MNIST with the Keras MLP: 512-512 ReLU with dropout 0.2, Adam 1e-3, early stopping.

Flatten-Dense(512)-Dropout(0.2)-Dense(512)-Dropout(0.2)-Dense(10) (669,706 parameters), batch
128, up to 20 epochs; training stops when the validation loss has not improved for 3 epochs and
the best epoch's parameters are kept. Validation is the last 6,000 training images
(``train[54000:]``).

Command (the shared PNG copy of MNIST; drop ``data.image_folder`` to use tfds)::

    python -m experiments.train --config mnist_mlp \
        --workdir runs/mnist_mlp \
        --config.data.image_folder=../shared/data/mnist_png_train.tar.gz

Early stopping (patience 3) ends the run a few epochs after the best validation loss and
restores that epoch; what it reaches: the ``mnist_mlp`` lesson (BENCHMARKS.md, "The lessons'
full runs").

Every key, its default and its meaning: :mod:`jaxcnn.train.config`.
"""

import ml_collections

from jaxcnn.train.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model = "mlp"
  config.model_kwargs = ml_collections.ConfigDict({"hidden": (512, 512), "dropout": 0.2})
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 20
  config.patience = 3
  config.data.name = "mnist"
  config.data.train_split = "train[:54000]"
  config.data.eval_split = "train[54000:]"
  config.data.normalize = "unit"
  return config
