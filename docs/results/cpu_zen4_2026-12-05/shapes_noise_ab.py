"""A/B (stop 61): `shapes` batches with the noise drawn as `rng.normal` per example (the
source of BEFORE_COMMIT, loaded from git) or as `standard_normal` into one float64 buffer,
scaled and cast once for the batch (the working tree); the same batches, checked. Prints ms
a batch of the LeNet-5 config's source (64 examples, 32x32x1), five alternated rounds.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05/shapes_noise_ab.py [BEFORE_COMMIT]
"""

import subprocess
import sys
import time
import types

import numpy as np

from dl_arch.data import pipeline
from dl_arch.testing import load_config


def module_from(commit: str, path: str, name: str) -> types.ModuleType:
    """The module at `path` as `commit` has it, imported under `name` (its dataset not
    registered a second time)."""
    source = subprocess.check_output(["git", "show", f"{commit}:{path}"], text=True)
    source = source.replace("@register_dataset(", "@_not_registered(")
    module = types.ModuleType(name)
    module._not_registered = lambda *args, **kwargs: (lambda f: f)
    sys.modules[name] = module
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module


commit = sys.argv[1] if len(sys.argv) > 1 else "b87d1c7"
before = module_from(commit, "dl_arch/data/sources/shapes.py", "shapes_before")
config = pipeline.resolve_dataset(load_config("configs/lenet5_shapes.py").dataset)
source = pipeline.make_source(config, config.train_split, 0)
old = before.Shapes.__new__(before.Shapes)
old.__dict__.update(source.__dict__)
ways = {"before": old, "now": source}
for first in range(0, 64 * 40, 64 * 8):
    indices = np.arange(first, first + 64)
    a, b = ways["before"].get_batch(indices), ways["now"].get_batch(indices)
    assert all(np.array_equal(a[k], b[k]) for k in a), "batches differ"
for _ in range(5):
    line = []
    for name, src in ways.items():
        t0 = time.perf_counter()
        for i in range(200):
            src.get_batch(np.arange(i * 64, (i + 1) * 64))
        line.append(f"{name} {(time.perf_counter() - t0) / 200 * 1e3:.3f}")
    print("ms a batch:", ", ".join(line), flush=True)
