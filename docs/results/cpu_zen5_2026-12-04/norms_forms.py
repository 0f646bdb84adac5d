"""The three logged norms in one reduction over the stacked trees or in one per tree.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-04/norms_forms.py

Each form jitted alone on three same-shaped trees (as a step's gradient, update and
parameters are): MLP-like trees of growing width, then the parameters of three configs.
Medians of 7 alternated rounds. `step.global_norms` picks the stacked form up to
`FUSED_NORMS_MAX_SIZE` numbers a tree.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

from dl_arch.testing import load_config
from dl_arch.train.step import _squares
from dl_arch.train.trainer import Trainer


def stacked(*trees):
    return jnp.sqrt(jnp.sum(jnp.stack([_squares(t) for t in trees]), axis=1))


def per_tree(*trees):
    return jnp.sqrt(jnp.stack([jnp.sum(_squares(t)) for t in trees]))


def compare(name: str, tree) -> None:
    trees = (tree, jax.tree_util.tree_map(lambda x: -0.5 * x, tree),
             jax.tree_util.tree_map(lambda x: 3.0 * x, tree))
    forms = {"stacked": jax.jit(stacked), "per tree": jax.jit(per_tree)}
    want = forms["per tree"](*trees)
    size = sum(x.size for x in jax.tree_util.tree_leaves(tree))
    calls = 2000 if size < 100_000 else 50
    times: dict[str, list[float]] = {k: [] for k in forms}
    for _ in range(7):
        for k, f in forms.items():
            assert jnp.allclose(f(*trees), want, rtol=1e-5)
            start = time.perf_counter()
            for _ in range(calls):
                out = f(*trees)
            jax.block_until_ready(out)
            times[k].append((time.perf_counter() - start) / calls * 1e6)
    print(f"{name:22s} {size:9,d} numbers a tree: "
          + "  ".join(f"{k} {statistics.median(v):8.1f} µs" for k, v in times.items()))


def main() -> None:
    for width in (16, 32, 64, 96, 128, 192):
        shapes = [(2, width), (width,), (width, width), (width,), (width, 10), (10,),
                  (width, width), (width,)]
        compare(f"MLP width {width}", [jnp.ones(s) for s in shapes])
    for spec in ("configs/mlp_xor.py", "configs/lenet5_shapes.py", "configs/mlp_shapes.py"):
        trainer = Trainer(load_config(spec))
        compare(spec.split("/")[-1][:-3], trainer.init_state(trainer.first_batch()).params)


if __name__ == "__main__":
    main()
