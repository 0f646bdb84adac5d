"""The VAE row's step three ways, alternated in one process: ours (the loop step of
`benchmarks.bench_generative`), a plain jax+optax step of the same network and loss (loss
only, no metrics), and PyTorch's; then each jax step's top ops (`benchmarks.op_profile`).

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05b/vae_step_ab.py
"""

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks.bench_generative import _ours, _torch_vae, _vae_config  # noqa: E402
from benchmarks.harness import alternate  # noqa: E402
from benchmarks.op_profile import op_times  # noqa: E402

B = 128
images = np.random.default_rng(0).uniform(size=(B, 28, 28, 1)).astype(np.float32)
ours, _, _ = _ours(_vae_config(B), images)
torch_run = _torch_vae(B)


def dense_init(key, n_in: int, n_out: int):
    bound = 1 / np.sqrt(n_in)
    k1, k2 = jax.random.split(key)
    return (jax.random.uniform(k1, (n_in, n_out), minval=-bound, maxval=bound),
            jax.random.uniform(k2, (n_out,), minval=-bound, maxval=bound))


keys = jax.random.split(jax.random.key(0), 5)
sizes = {"fc1": (784, 400), "fc21": (400, 20), "fc22": (400, 20), "fc3": (20, 400),
         "fc4": (400, 784)}
params = {name: dense_init(k, *size) for k, (name, size) in zip(keys, sizes.items())}
opt = optax.adam(1e-3)


def loss_fn(p, x, key):
    def lin(name, h):
        return h @ p[name][0] + p[name][1]

    h = jax.nn.relu(lin("fc1", x))
    mu, logvar = lin("fc21", h), lin("fc22", h)
    z = mu + jax.random.normal(key, mu.shape) * jnp.exp(0.5 * logvar)
    logits = lin("fc4", jax.nn.relu(lin("fc3", z)))
    recon = optax.sigmoid_binary_cross_entropy(logits, x).sum()
    kl = -0.5 * jnp.sum(1 + logvar - mu ** 2 - jnp.exp(logvar))
    return (recon + kl) / x.shape[0]


@jax.jit
def plain_step(p, s, x, key):
    key, sub = jax.random.split(key)
    loss, g = jax.value_and_grad(loss_fn)(p, x, sub)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, key, loss


x = jnp.asarray(images.reshape(B, 784))
held = [params, opt.init(params), jax.random.key(1)]


def plain():
    held[0], held[1], held[2], loss = plain_step(held[0], held[1], x, held[2])
    return loss


for rnd in range(3):
    o, p, t = alternate([ours, plain, torch_run])
    print(f"round {rnd}: ours {o * 1e3:.3f} ms  plain jax+optax {p * 1e3:.3f} ms  torch "
          f"{t * 1e3:.3f} ms  ours/plain {p / o:.2f}x  ours/torch {t / o:.2f}x", flush=True)
for name, run in (("ours", ours), ("plain", plain)):
    totals, wall = op_times(run, 200)
    total = sum(totals.values())
    print(f"{name}: {wall * 1e3:.2f} ms unprofiled; ops {total * 1e3:.2f} ms")
    for op, s in sorted(totals.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {op:<44} {s * 1e3:7.3f} ms {s / total:6.1%}")
