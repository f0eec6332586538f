"""The lock that keeps two runs off one `--out`, and the user's umask for files polyret creates.

Part of the output-folder policy of `polyret.io` (`OutputDir` takes the lock before it looks at the
folder); kept apart so that module stays readable.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from rich.markup import escape

from polyret.errors import PolyretError
from polyret.runtime import console

LOCK_TAG = ".polyret-lock"


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so it is never changed even briefly)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputLock:
    """`.NAME.polyret-lock` beside `--out`: an flock'ed file holding the owner's pid, host and command.

    Why beside and not inside: under --overwrite the folder itself is swapped, and a missing --out has
    no inside yet. Why flock: the kernel drops it when the owner dies however it dies, so a lock file
    left by a killed run is recognised as stale (and taken over with a warning) without guessing from
    pids, which are reused. The same process may take it again (nested use of one --out). Under
    torchrun only rank 0 takes it: the job's processes share their --out by design.
    """

    _held: ClassVar[dict[str, OutputLock]] = {}  # lock path -> this process's lock on it

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd, self.count = path, fd, 1

    @classmethod
    def acquire(cls, out: Path, flag: str = "--out") -> OutputLock | None:
        if os.environ.get("RANK", "0") != "0":
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        path = out.parent.resolve() / f".{out.name}{LOCK_TAG}"
        held = cls._held.get(str(path))
        if held is not None:
            held.count += 1
            return held
        for _ in range(5):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _lock_owner(fd)
                os.close(fd)
                raise PolyretError(
                    f"{flag} {out} is in use by another polyret run ({owner}); wait for it to "
                    f"finish or choose another {flag}"
                ) from None
            if _same_file(fd, path):
                return cls._take(path, fd, out, flag)
            os.close(fd)  # its owner released (unlinked) it between our open and our lock: try the new one
        raise PolyretError(f"{flag} {out}: could not take {path} (other runs keep taking it)")

    @classmethod
    def _take(cls, path: Path, fd: int, out: Path, flag: str) -> OutputLock:
        previous = _lock_owner(fd)
        if previous != "unknown owner":
            console.print(
                f"[yellow]warning:[/] {escape(f'{flag} {out}: recovered a stale lock {path.name} left by {previous}, which is no longer running')}",
                soft_wrap=True,
            )
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join(sys.argv[:6]),
                }
            ).encode(),
            0,
        )
        lock = cls._held[str(path)] = cls(path, fd)
        return lock

    def release(self) -> None:
        self.count -= 1
        if self.count > 0 or self.fd < 0:
            return
        self._held.pop(str(self.path), None)
        try:
            self.path.unlink(missing_ok=True)  # unlink while still locked: nobody can take a dying file
        finally:
            os.close(self.fd)
            self.fd = -1


def release_lock(lock: OutputLock | None) -> None:
    if lock is not None:
        lock.release()


@contextmanager
def locked(out: Path, flag: str = "--out") -> Iterator[OutputLock | None]:
    """`OutputLock.acquire(out, flag)` for the length of a `with` block, released however it ends."""
    lock = OutputLock.acquire(out, flag)
    try:
        yield lock
    finally:
        release_lock(lock)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _lock_owner(fd: int) -> str:
    """'pid N on HOST since T (COMMAND)' from a lock file's content, or 'unknown owner' when empty."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['started']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown owner"
