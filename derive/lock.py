"""One build at a time: an advisory lock (``flock``) on a file at the project's root.

The lock file is never removed (removing it would let two processes lock two
different files of the same name); the kernel releases the lock when the
process ends, however it ends.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class LockTimeout(Exception):
    """Another process held the lock for longer than we were willing to wait."""


@contextmanager
def held(
    path: Path, timeout: float, shared: bool = False, waiting: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """Hold ``path``'s lock (exclusive, or shared with other readers); ``waiting()`` once if busy.

    A reader without write access (a read-only checkout, another user's) takes the shared lock
    on the file opened for reading; where it cannot create the file, it reads without a lock:
    nobody who could build there has built yet.
    """
    fd = _open(path, shared)
    if fd is None:
        yield
        return
    HELD.add(fd)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another build still holds {path.name} after {timeout:g} s"
                    ) from None
                if not told:
                    waiting()
                    told = True
                time.sleep(0.05)
        yield
    finally:
        HELD.discard(fd)
        os.close(fd)


HELD: set[int] = set()  # the descriptors of the locks this process holds


def forget_in_child() -> None:
    """In a process forked while a lock is held: close its copies of the lock's descriptors.

    The lock stays the parent's; without this, a worker left behind by a killed build
    (SIGKILL reaches only the parent) would hold it, and every later build would wait.
    """
    for fd in HELD:
        os.close(fd)
    HELD.clear()


def _open(path: Path, shared: bool) -> int | None:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        if not shared or error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
