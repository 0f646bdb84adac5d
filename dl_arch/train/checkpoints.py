"""orbax checkpoints of the train state, with the data-iterator position and the loop's own
state (running metric averages, reference losses) beside it.

Resume order (the one place it is written down): the newest step directory under
`<workdir>/checkpoints/` whose items all restore. A step whose restore fails because it is
incomplete or corrupt (a missing or unreadable file, truncated or damaged array data: see
`corruption_reason`) is reported with its reason, and the next older one is tried; once one
restores, the corrupt newer steps are moved to `checkpoints.unreadable/` (kept, not lost) so
that training can save those steps again. Any other error stops the run as it is. When
checkpoints exist but none restores, the run stops with a `ConfigError` listing them: it never
starts again from step 0 on its own, and nothing is moved. A readable checkpoint of a different
model or optimiser (other parameter names or shapes, e.g. after a config default changed) is a
`ConfigError` too: the workdir is left untouched.

Saving checks first that the directory can be written, so a read-only or misplaced
`checkpoints/` fails in one line instead of inside orbax; a full disk is one line as well, and
earlier checkpoints stay intact (orbax writes a step to a temporary directory and renames it).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from dl_arch.config.errors import ConfigError
from dl_arch.train.paths import flatten_with_paths

log = logging.getLogger("dl_arch")

# tensorstore status codes (the prefix of orbax's ValueError) that mean missing or damaged bytes
_CORRUPT_STATUS = ("DATA_LOSS", "OUT_OF_RANGE", "NOT_FOUND")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EROFS, errno.EPERM)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes / contexts, outermost first."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _first_line(exc: BaseException, limit: int = 240) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def _tensorstore_reason(exc: BaseException) -> str:
    """'CODE: innermost cause' of a tensorstore error (whose message nests every layer's
    context and ends with a JSON spec), e.g. 'OUT_OF_RANGE: Requested byte range ... size 1459'."""
    text = re.sub(r"\s*\[(tensorstore_spec|os_error_code)=.*$", "", _first_line(exc, 100_000))
    parts = text.split(": ")
    return (f"{parts[0]}: {parts[-1]}" if len(parts) > 2 else text)[:240]


def corruption_reason(exc: BaseException) -> str | None:
    """Why `exc` (raised restoring a step) means the step is incomplete or corrupt, else None.

    Measured with orbax 0.12 on a step directory: an emptied `state/` or a deleted
    `state/_METADATA` -> FileNotFoundError; a truncated or emptied array file -> ValueError
    'OUT_OF_RANGE: ...'; flipped bytes -> 'DATA_LOSS: ...'; a deleted OCDBT manifest ->
    'NOT_FOUND: ...'; garbage in a JSON file -> JSONDecodeError; a missing item directory ->
    KeyError 'Item ... was not found in the checkpoint'. Anything else (a permission error,
    out of memory, a bug) is not corruption: the caller re-raises it.
    """
    for e in _chain(exc):
        if isinstance(e, (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, EOFError,
                          UnicodeDecodeError)):
            return f"{type(e).__name__}: {_first_line(e)}"
        if isinstance(e, ValueError) and str(e).split(":", 1)[0].strip() in _CORRUPT_STATUS:
            return _tensorstore_reason(e)
        if isinstance(e, KeyError) and "not found in the checkpoint" in str(e):
            return f"an item is missing: {_first_line(e)}"
    return None


def filesystem_error(exc: BaseException, directory: str, action: str) -> ConfigError | None:
    """A one-line ConfigError when `exc` means a full disk or an unwritable directory, else None."""
    for e in _chain(exc):
        code = getattr(e, "errno", None)
        text = str(e)
        if code in _NO_SPACE or "No space left on device" in text or "Disk quota exceeded" in text:
            return ConfigError(f"no space left on the device of {directory} while {action}; "
                               f"earlier checkpoints are kept: free space (or lower "
                               f"config.max_checkpoints_to_keep) and run again to resume")
        if code in _NOT_WRITABLE or "Read-only file system" in text or "PERMISSION_DENIED" in text:
            return ConfigError(f"checkpoint directory {directory} cannot be written "
                               f"({getattr(e, 'strerror', None) or _first_line(e, 120)}) while "
                               f"{action}; make it writable or give another --workdir")
    return None


def check_writable(directory: str) -> None:
    """Fails in one line, within milliseconds, when `directory` cannot hold a new file."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"checkpoint directory {directory} is a file, not a directory; move it "
                          f"away or give another --workdir")
    probe = os.path.join(directory, f".write_test.{socket.gethostname()}.{os.getpid()}")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        if e.errno in _NO_SPACE:
            raise ConfigError(f"no space left on the device of {directory}; earlier checkpoints "
                              f"are kept: free space and run again to resume") from None
        raise ConfigError(f"checkpoint directory {directory} cannot be written ({e.strerror}); "
                          f"make it writable or give another --workdir") from None


def _drop_closed_loop_noise(previous: Any) -> Any:
    """A `sys.unraisablehook` that drops tensorstore callbacks reaching an asyncio loop orbax has
    already closed ('Event loop is closed', dozens when one read of a checkpoint fails) and passes
    everything else on to `previous`."""
    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
            return
        previous(unraisable)

    hook.dl_arch_quiet = True
    return hook


class _QuietAbandonedReads(logging.Filter):
    """Drops asyncio's 'Task exception was never retrieved' for tensorstore reads that orbax
    abandoned once another read of the same checkpoint failed (logged when the tasks are
    collected, often at exit): the restore already reported that checkpoint's error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Task exception was never retrieved"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ValueError) and re.match(r"[A-Z_]+: ", str(exc)))


class _QuietFilesystemErrors(logging.Filter):
    """Drops orbax's background-thread tracebacks for a full disk or an unwritable directory:
    the save's one-line ConfigError replaces them."""

    MARKERS = ("No space left on device", "os_error_code='28'", "Disk quota exceeded",
               "Read-only file system", "PERMISSION_DENIED")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " ".join(str(e) for e in _chain(record.exc_info[1]))
        return not any(marker in text for marker in self.MARKERS)


class Checkpointer:
    """Saves and restores `(TrainState, grain iterator, loop JSON)` in `<workdir>/checkpoints`."""

    def __init__(self, workdir: str, max_to_keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        check_writable(self.directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler(),
                           "loop": ocp.JsonCheckpointHandler()},
        )
        self._saving: int | None = None  # the step of the save that may still be in flight
        self._quiet = _QuietFilesystemErrors()
        logging.getLogger("absl").addFilter(self._quiet)  # orbax logs through absl
        if not getattr(sys.unraisablehook, "dl_arch_quiet", False):  # kept: callbacks come late
            sys.unraisablehook = _drop_closed_loop_noise(sys.unraisablehook)
            logging.getLogger("asyncio").addFilter(_QuietAbandonedReads())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, data_iterator: Any | None, force: bool = False,
             loop_state: dict[str, Any] | None = None) -> None:
        """Starts saving `step` (asynchronously); `loop_state` is a small JSON-able dict.

        The previous save is waited for first (orbax would wait too), so its failure is
        reported as its own; then the directory is checked to be writable."""
        self.wait()
        check_writable(self.directory)
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        if loop_state is not None:
            items["loop"] = ocp.args.JsonSave(json.loads(json.dumps(loop_state)))  # a snapshot
        try:
            self.manager.save(step, args=ocp.args.Composite(**items), force=force)
        except Exception as e:
            self._raise_filesystem_error(e, f"saving step {step}")
            raise
        self._saving = step

    def _raise_filesystem_error(self, exc: BaseException, action: str) -> None:
        error = filesystem_error(exc, self.directory, action)
        if error is not None:
            raise error from None

    def restore(self, abstract_state: Any, data_iterator: Any | None
                ) -> tuple[Any, int, dict[str, Any] | None] | None:
        """(state, step, loop state or None) of the newest checkpoint that restores, restoring
        the iterator in place; None when there is no checkpoint (see the module docstring)."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        expected = array_shapes(abstract_state)
        corrupt: list[tuple[int, str]] = []
        for i, step in enumerate(steps):
            reason = self._missing(step, data_iterator is not None)
            if reason is None:
                try:
                    self._check_same_arrays(step, expected)
                    restored = self.manager.restore(step, args=ocp.args.Composite(
                        **self._restore_args(step, abstract_state, data_iterator)))
                except ConfigError:
                    raise
                except Exception as e:
                    reason = corruption_reason(e)
                    if reason is None:
                        raise
            if reason is not None:
                older = steps[i + 1] if i + 1 < len(steps) else None
                log.warning("checkpoint step %d in %s is incomplete or corrupt (%s); %s", step,
                            self.directory, reason, f"falling back to step {older}"
                            if older is not None else "no older checkpoint")
                corrupt.append((step, reason))
                continue
            self._set_aside([s for s, _ in corrupt])
            loop_state = restored["loop"] if "loop" in restored.keys() else None
            return restored["state"], step, loop_state
        if corrupt:
            listed = "; ".join(f"step {s}: {r}" for s, r in corrupt)
            raise ConfigError(
                f"none of the {len(corrupt)} checkpoints in {self.directory} restores ({listed}); "
                f"nothing was changed: to start fresh give a new --workdir or move "
                f"{self.directory} aside (e.g. mv {self.directory} {self.directory}.old)")
        return None

    def _restore_args(self, step: int, abstract_state: Any, data_iterator: Any | None
                      ) -> dict[str, Any]:
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        if os.path.isdir(os.path.join(self.directory, str(step), "loop")):  # absent before v2
            items["loop"] = ocp.args.JsonRestore()
        return items

    def _missing(self, step: int, with_data: bool) -> str | None:
        """What a step directory lacks that every complete checkpoint has, else None."""
        step_dir = os.path.join(self.directory, str(step))
        needed = ["state", os.path.join("state", "_METADATA")] + (["data"] if with_data else [])
        for name in needed:
            if not os.path.exists(os.path.join(step_dir, name)):
                return f"{name} is missing"
        return None

    def _check_same_arrays(self, step: int, expected: dict[str, tuple[int, ...]]) -> None:
        """Raises ConfigError if checkpoint `step` holds other arrays than this run's state.

        Metadata that cannot be read is corruption, not a different model: its error goes to
        the caller, which classifies it."""
        metadata = self.manager.item_metadata(step)["state"]
        if metadata is None:  # orbax returns None rather than raising for missing metadata
            raise FileNotFoundError(f"the metadata of step {step} in {self.directory} is missing")
        stored = array_shapes(metadata)
        differ = sorted((k for k in stored.keys() | expected.keys()
                         if stored.get(k) != expected.get(k)),
                        key=lambda k: (not k.startswith("params/"), k))  # a parameter first
        if differ:
            raise ConfigError(
                f"the checkpoint at step {step} in {self.directory} holds a different model or "
                f"optimiser than this config ({len(differ)} arrays differ, e.g. {differ[0]}); "
                f"resume with the config it was written with (config.json beside it) or start "
                f"in a new --workdir")

    def _set_aside(self, steps: list[int]) -> None:
        """Moves corrupt steps to `checkpoints.unreadable/` (kept for inspection, not lost)."""
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
                    log.warning("moved corrupt checkpoint %s to %s", src, dst)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("checkpoints_set_aside")
        self.manager.reload()

    def wait(self) -> None:
        """Waits for the save in flight; a full disk or unwritable directory is one line."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            self._raise_filesystem_error(e, f"saving step {self._saving}")
            raise

    def close(self) -> None:
        try:
            self.wait()
        finally:
            try:
                self.manager.close()
            finally:
                logging.getLogger("absl").removeFilter(self._quiet)


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
    raise ConfigError(f"config.init_from='{path}' holds no checkpoint; give a workdir of an "
                      f"earlier run, its checkpoints/ directory or one step directory")
