# %% [markdown]
# # jaxcnn in ten minutes
#
# A convolution written three ways and checked against each other, the course's CIFAR-10 CNN
# built by name with a Keras-like summary, and one training step run by hand with optax: the
# pieces that `jaxcnn.train` puts together for you.

# %% [markdown]
# ## A convolution, three ways
# `F.conv` is cross-correlation (what deep-learning libraries call convolution), channels-last:
# images `[B, H, W, C]`, kernels `[kh, kw, C_in, C_out]`. The same numbers come out of the
# im2col "patch classifier" view (`patches @ w`) and of `jax.lax` directly.

# %%
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import functional as F, inspect, shapes

x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
w = jax.random.normal(jax.random.key(1), (3, 3, 3, 16))
y = F.conv(x, w, stride=2, padding="SAME")
y_patches = F.conv_via_patches(x, w, stride=2, padding="SAME")
y_lax = lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
print("output shape", y.shape, "predicted", shapes.conv_output_shape(x.shape, 3, 16, stride=2, padding="SAME"))
print("max |conv - patches @ w| =", float(jnp.max(jnp.abs(y - y_patches))))
print("max |conv - lax|         =", float(jnp.max(jnp.abs(y - y_lax))))

# %% [markdown]
# ## The course's CIFAR-10 CNN, by name

# %%
from jaxcnn.models import get_model

model = get_model("tutorial_cnn")
summary = inspect.summary(model, (1, 32, 32, 3))

# %% [markdown]
# ## One training step by hand
# Forward pass, cross-entropy, gradients and an Adam update in one jitted function; `jaxcnn.train`
# adds batching, evaluation, checkpoints and resumption around exactly this.

# %%
import optax

images = jax.random.uniform(jax.random.key(2), (64, 32, 32, 3))
labels = jax.random.randint(jax.random.key(3), (64,), 0, 10)
params = model.init(jax.random.key(4), images[:1])["params"]
tx = optax.adam(1e-3)
opt_state = tx.init(params)


@jax.jit
def step(params, opt_state, images, labels):
  def loss_fn(p):
    logits = model.apply({"params": p}, images)
    return F.cross_entropy(logits, labels).mean()
  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


for i in range(5 if QUICK else 50):
  params, opt_state, loss = step(params, opt_state, images, labels)
print(f"loss on one fixed batch after {i + 1} steps: {float(loss):.4f} (it falls: the net memorises the batch)")

# %% [markdown]
# ## The same CNN, the Flax NNX way
# Flax's own tutorials now write models with NNX: a model is a Python object that owns its
# arrays (`class CNN(nnx.Module)`), is built eagerly from its input sizes and an `nnx.Rngs`,
# and is switched with `model.train()` / `model.eval()` (dropout on or off, BatchNorm on batch or
# running statistics). `jaxcnn.nnx` has every jaxcnn layer for it, with the same arguments,
# checks and arithmetic as the Linen ones, plus the input size first: `Conv(in_features,
# features, kernel_size)`. The summary and the rest of `jaxcnn.inspect` take the module itself.

# %%
from flax import nnx

from jaxcnn import nnx as jnnx


class CNN(nnx.Module):
  """The tutorial CNN above, written the NNX way with jaxcnn.nnx layers (and a dropout)."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv1 = jnnx.Conv(3, 32, 3, activation="relu", rngs=rngs)
    self.conv2 = jnnx.Conv(32, 64, 3, activation="relu", rngs=rngs)
    self.conv3 = jnnx.Conv(64, 64, 3, activation="relu", rngs=rngs)
    self.pool = jnnx.MaxPool(2)
    self.flatten = jnnx.Flatten()
    self.dense = jnnx.Dense(4 * 4 * 64, 64, activation="relu", rngs=rngs)
    self.dropout = jnnx.Dropout(0.2, rngs=rngs)
    self.head = jnnx.Dense(64, 10, rngs=rngs)

  def __call__(self, x):
    x = self.pool(self.conv1(x))
    x = self.pool(self.conv2(x))
    x = self.flatten(self.conv3(x))
    return self.head(self.dropout(self.dense(x)))


cnn = CNN(nnx.Rngs(0))
print(inspect.summary(cnn, (1, 32, 32, 3), print_fn=None).total_params, "parameters, as the Linen model's")

# %% [markdown]
# **Trained by jaxcnn's engine.** `fit` takes the NNX module, trains it with the very train step
# that trains Linen models, and writes the trained weights back into it (as Keras' `fit` and
# `nnx.Optimizer` do): afterwards `cnn` is the trained model.

# %%
from jaxcnn.train import fit

history = fit(cnn, (np.asarray(images), np.asarray(labels)), epochs=2 if QUICK else 20,
              batch_size=16, verbose=0)
cnn.eval()  # dropout off for predictions
print("fit's loss per epoch:", [round(l, 3) for l in history["loss"]])
print("predicted classes of the first 8 images:", cnn(images[:8]).argmax(-1))

# %% [markdown]
# **Trained by hand**, for contrast: the loop of Flax's NNX tutorials, with `nnx.Optimizer`
# (it updates the module in place) and `nnx.jit` / `nnx.value_and_grad`, which accept the
# module as an argument. This is the same training as the Linen step above, written around an
# object instead of a pytree of parameters.

# %%
cnn2 = CNN(nnx.Rngs(1))
optimizer = nnx.Optimizer(cnn2, optax.adam(1e-3), wrt=nnx.Param)


@nnx.jit
def nnx_step(model, optimizer, images, labels):
  def loss_fn(model):
    return F.cross_entropy(model(images), labels).mean()
  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


cnn2.train()
for i in range(5 if QUICK else 50):
  loss = nnx_step(cnn2, optimizer, images, labels)
print(f"hand-written NNX loop: loss {float(loss):.4f} after {i + 1} steps")

# %% [markdown]
# **The zoo as NNX modules.** `jnnx.get_model(name, rngs=...)` builds any model of
# `jaxcnn.models` as an NNX module, derived from its one (Linen) definition: its layers are
# `jaxcnn.nnx` layers at the Linen names, and its variables are the Linen model's, so either
# API reads the other's weights and checkpoints.

# %%
resnet = jnnx.get_model("resnet20", rngs=nnx.Rngs(0))
resnet.eval()
print(type(resnet.BasicBlock_0._ConvBN_0.Conv_0).__name__, resnet.BasicBlock_0._ConvBN_0.Conv_0.kernel.shape)
same = get_model("resnet20").apply(jnnx.to_linen_variables(resnet), images[:4])
print("max |NNX logits - Linen logits| =", float(jnp.max(jnp.abs(resnet(images[:4]) - same))))
