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
