"""`detector_shapes`' loop step (FPN on, float32, this CPU) with the FPN's upsampling as
repeats (landed) against `jax.image.resize`, one process, alternated rounds. Log:
step_ab.log (three runs). From the repository root:
`PYTHONPATH=. python docs/results/resize_nearest_2026-12-04/step_ab.py`.
"""
import jax

from benchmarks.harness import alternate
from benchmarks.loop_step import loop_stepper
from dl_arch.models import detection
from dl_arch.models.layers.resize import resize_nearest
from dl_arch.testing import load_config
from dl_arch.train.trainer import Trainer


def image_resize(x, h, w):
    return jax.image.resize(x, (x.shape[0], h, w, x.shape[3]), "nearest")


if __name__ == "__main__":
    runs = {}
    for name, fn in (("repeats", resize_nearest), ("image.resize", image_resize)):
        detection.resize_nearest = fn  # what the FPN calls, read when the step is traced
        trainer = Trainer(load_config("configs/detector_shapes.py"))
        runs[name], _ = loop_stepper(trainer, trainer.first_batch())
        jax.block_until_ready(runs[name]())
    detection.resize_nearest = resize_nearest
    print({k: f"{v * 1e3:.1f} ms" for k, v in zip(runs, alternate(list(runs.values())))})
