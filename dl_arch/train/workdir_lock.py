"""One writer per workdir: `<workdir>/.lock`, held with `flock` for the whole run.

The file names its holder ("host pid"). A second process on the same workdir fails at
once with a `ConfigError` naming that holder and touches nothing. `flock` is released by
the kernel when its holder dies, so a lock file whose lock is free is a leftover of a run
that ended without cleaning up (kill -9, a crash): it is taken over with a warning.
Multi-host runs lock on process 0 only (the other processes share its workdir).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import time
from typing import Any

from dl_arch.config.errors import ConfigError

log = logging.getLogger("dl_arch")

LOCK_NAME = ".lock"


def _holder_of(text: str) -> tuple[str, int | None]:
    """(host, pid) written in a lock file ('?' and None where it is unreadable)."""
    parts = text.split()
    host = parts[0] if parts else "?"
    pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return host, pid


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkdirLock:
    """An exclusive, non-blocking lock on a workdir; `with WorkdirLock(workdir): ...`."""

    def __init__(self, workdir: str, active: bool = True):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
        self.active = active
        self._fd: int | None = None

    def acquire(self) -> WorkdirLock:
        """Takes the lock or raises ConfigError naming the run that holds it."""
        if not self.active or self._fd is not None:
            return self
        host, pid = socket.gethostname(), os.getpid()
        for _ in range(100):  # retried only if the file is replaced while we lock it
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                previous = os.pread(fd, 200, 0).decode(errors="replace")
                os.close(fd)
                held_by, held_pid = _holder_of(previous)
                raise ConfigError(
                    f"workdir {os.path.dirname(self.path)} is in use by another run (host "
                    f"{held_by}, pid {held_pid if held_pid is not None else '?'}); wait for it to "
                    f"finish or stop it, or give another --workdir") from None
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    log.warning("cannot lock %s (%s): this filesystem does not support flock, so "
                                "nothing stops a second run from writing into this workdir",
                                self.path, e.strerror)
                    return self
                raise
            try:  # the file we locked may have been unlinked by a releasing holder meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = os.pread(fd, 200, 0).decode(errors="replace")
            if previous.strip():
                self._warn_stale(previous)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{host} {pid} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise RuntimeError(f"could not take {self.path}: it kept being replaced")

    def _warn_stale(self, previous: str) -> None:
        held_by, held_pid = _holder_of(previous)
        if held_by == socket.gethostname() and held_pid is not None:
            state = "still running but not holding it" if _pid_alive(held_pid) else "no longer running"
        else:
            state = "no longer holding it"
        log.warning("taking over the stale lock %s left by host %s pid %s (%s)", self.path,
                    held_by, held_pid if held_pid is not None else "?", state)

    def release(self) -> None:
        """Removes the lock file, then drops the lock (a waiting process retries on a new file)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
