"""orbax checkpoints of the train state with the data-iterator position beside it.

Resume order (the one place it is written down): the newest step directory under
`<workdir>/checkpoints/` whose state and data items both restore; a step that fails to
restore is reported and the next older one is tried; with none, the run starts fresh.
A readable checkpoint of a different model or optimiser (other parameter names or shapes,
e.g. after a config default changed) is an error instead: the workdir is left untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from dl_arch.train.paths import flatten_with_paths

log = logging.getLogger("dl_arch")


class Checkpointer:
    """Saves and restores `(TrainState, grain iterator)` pairs in `<workdir>/checkpoints`."""

    def __init__(self, workdir: str, max_to_keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()},
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, data_iterator: Any | None, force: bool = False) -> None:
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, abstract_state: Any, data_iterator: Any | None) -> tuple[Any, int] | None:
        """(state, step) from the newest readable checkpoint, restoring the iterator in place."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        unreadable = []
        expected = array_shapes(abstract_state)
        for i, step in enumerate(steps):
            self._check_same_arrays(step, expected)
            items = {"state": ocp.args.StandardRestore(abstract_state)}
            if data_iterator is not None:
                items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(**items))
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: fall back
                older = steps[i + 1] if i + 1 < len(steps) else None
                log.warning("checkpoint step %d in %s is unreadable (%s: %s); %s", step,
                            self.directory, type(e).__name__, str(e).splitlines()[0][:200],
                            f"falling back to step {older}" if older is not None
                            else "no older checkpoint, starting fresh")
                unreadable.append(step)
                continue
            self._set_aside(unreadable)
            return restored["state"], step
        self._set_aside(unreadable)
        return None

    def _check_same_arrays(self, step: int, expected: dict[str, tuple[int, ...]]) -> None:
        """Raises if checkpoint `step` holds other arrays than this run's state."""
        try:
            stored = array_shapes(self.manager.item_metadata(step)["state"])
        except Exception:  # noqa: BLE001 - unreadable metadata: restore() reports and skips it
            return
        differ = sorted((k for k in stored.keys() | expected.keys()
                         if stored.get(k) != expected.get(k)),
                        key=lambda k: (not k.startswith("params/"), k))  # a parameter first
        if differ:
            raise ValueError(
                f"the checkpoint at step {step} in {self.directory} holds a different model or "
                f"optimiser than this config ({len(differ)} arrays differ, e.g. {differ[0]}); "
                f"resume with the config it was written with (config.json beside it) or start "
                f"in a new --workdir")

    def _set_aside(self, steps: list[int]) -> None:
        """Moves unreadable steps to `checkpoints.unreadable/` (kept for inspection, not lost)."""
        if not steps:
            return
        if jax.process_index() == 0:
            aside = self.directory + ".unreadable"
            os.makedirs(aside, exist_ok=True)
            for step in steps:
                src = os.path.join(self.directory, str(step))
                dst = os.path.join(aside, f"{step}-{int(time.time())}")
                if os.path.exists(src):
                    shutil.move(src, dst)
                    log.warning("moved unreadable checkpoint %s to %s", src, dst)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("checkpoints_set_aside")
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def array_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """'params/dense/kernel' -> shape for every array of a state or of its checkpoint metadata
    (whose containers are dicts where the state has dataclasses and tuples: same paths)."""
    return {path: tuple(leaf.shape) for path, leaf in flatten_with_paths(tree).items()}


def restore_raw_state(path: str) -> dict[str, Any]:
    """The train state of a run as plain arrays (no target structure): for transfer learning.

    `path` is a workdir, its `checkpoints/` directory, or one step directory inside it.
    """
    path = os.path.abspath(path)
    for candidate in (os.path.join(path, "checkpoints"), path):
        if os.path.isdir(candidate) and not os.path.isdir(os.path.join(candidate, "state")):
            mngr = ocp.CheckpointManager(candidate, item_handlers={
                "state": ocp.StandardCheckpointHandler()},
                options=ocp.CheckpointManagerOptions(read_only=True, create=False))
            step = mngr.latest_step()
            if step is not None:
                out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
                mngr.close()
                return jax.tree_util.tree_map(lambda x: x, dict(out["state"]))
            mngr.close()
    state_dir = os.path.join(path, "state")
    if os.path.isdir(state_dir):
        return dict(ocp.StandardCheckpointer().restore(state_dir))
    raise ValueError(f"config.init_from='{path}' holds no checkpoint; give a workdir of an "
                     f"earlier run, its checkpoints/ directory or one step directory")
