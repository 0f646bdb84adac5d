"""`lenet5_shapes`' training batches read in this process: ms a batch, then a cProfile of
300 of them.

    PYTHONPATH=. python docs/results/cpu_zen4_2026-12-05b/prof_shapes.py
"""

import cProfile
import pstats
import time

from dl_arch.data import pipeline
from dl_arch.testing import load_config
from dl_arch.train.trainer import Trainer

trainer = Trainer(load_config("configs/lenet5_shapes.py"))
c = trainer.config
c.dataset.num_workers = 0
_, load, _ = pipeline._train_batches(c.dataset, 0, c.batch_size, trainer.task.preprocess, 0, 1)
for b in range(20):
    load(b)
count = 300
start = time.perf_counter()
for b in range(20, 20 + count):
    load(b)
print("ms/batch", (time.perf_counter() - start) / count * 1e3, "batch", c.batch_size)
profile = cProfile.Profile()
profile.enable()
for b in range(400, 400 + count):
    load(b)
profile.disable()
pstats.Stats(profile).sort_stats("tottime").print_stats(25)
