"""Write a set of files all or nothing.

Stage: each new text goes to a temporary file beside its target
(``.NAME.XXXXXXXX.tmp``), created like any ordinary file (mode 0o666 less the
umask) and flushed to disk. A failure here removes what was staged; no target
was touched.

Commit: a journal listing every (target, staged file, backup) is written next
to the project, each old target is hard-linked to a backup, each staged file
is renamed over its target, then the journal and the backups are removed. A
failure here renames the backups back, so the old set is restored. A process
killed here leaves the journal behind; ``recover`` (the next build runs it
first) restores the old set from it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

# What ``_temporary`` names look like; .gitignore has the broader ``.*.tmp``.
LEFTOVER = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


class WriteFailed(Exception):
    """Writing the set failed at ``path``; ``restored`` says whether the old set is back."""

    def __init__(self, path: Path, error: BaseException, restored: bool = True, why: str = ""):
        self.path, self.error, self.restored = path, error, restored
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        super().__init__(f"writing {path}: {reason}{why}")


def write_all(files: dict[Path, str], journal: Path) -> list[Path]:
    """Replace every file whose text differs, all or none; the paths replaced."""
    changed: list[Path] = []
    staged: dict[Path, Path] = {}
    try:
        for path, text in files.items():
            if not _holds(path, text):
                changed.append(path)
                staged[path] = _stage(path, text.encode())
        if not changed:
            return []
        path = journal
        entries = [
            {
                "target": str(target),
                "staged": str(temporary),
                "backup": str(_temporary(target)) if target.exists() else None,
            }
            for target, temporary in staged.items()
        ]
        _write_journal(journal, entries)
    except BaseException as error:
        _remove(staged.values())
        if isinstance(error, OSError):
            raise WriteFailed(path, error) from error
        raise
    _commit(entries, journal)
    return changed


def recover(journal: Path) -> list[Path]:
    """Undo a commit that was killed half-way, as the journal records it; the targets restored."""
    if not journal.exists():
        return []
    entries = json.loads(journal.read_text())
    _roll_back(entries)
    journal.unlink()
    return [Path(e["target"]) for e in entries]


def leftovers(folders: Iterable[Path]) -> list[Path]:
    """Temporary files a killed writer left in ``folders`` (not recursive)."""
    return sorted(
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if LEFTOVER.match(p.name) and p.is_file()
    )


def remove_leftovers(folders: Iterable[Path]) -> list[Path]:
    """Remove them; only safe while no other writer is running (hold the build lock)."""
    found = leftovers(folders)
    _remove(found)
    return found


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_bytes() == text.encode()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _stage(path: Path, data: bytes) -> Path:
    """``data`` in a new file beside ``path``, on disk; its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = _temporary(path)
        try:  # 0o666 less the umask: the mode an ordinary write gives (mkstemp gives 0o600)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _write_journal(journal: Path, entries: list[dict]) -> None:
    temporary = _stage(journal, json.dumps(entries, indent=1).encode())
    try:
        os.replace(temporary, journal)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _commit(entries: list[dict], journal: Path) -> None:
    at = journal
    try:
        for entry in entries:
            at = Path(entry["target"])
            if entry["backup"]:
                _link(entry["target"], entry["backup"])
            os.replace(entry["staged"], entry["target"])
        at = journal
        journal.unlink()  # from here on the new set stands; a backup left now is only litter
    except BaseException as error:
        try:
            _roll_back(entries)
            journal.unlink()
        except OSError as second:  # the journal stays: the next build tries again
            raise WriteFailed(
                at,
                error,
                restored=False,
                why=f"; restoring the previous files failed too ({second})",
            ) from error
        if isinstance(error, OSError):
            raise WriteFailed(at, error) from error
        raise
    for e in entries:
        if e["backup"]:
            with contextlib.suppress(OSError):  # the next build removes what stays
                Path(e["backup"]).unlink(missing_ok=True)


def _link(target: str, backup: str) -> None:
    """``backup`` as a second name of ``target`` (a copy where hard links are not supported)."""
    try:
        os.link(target, backup)
    except OSError as error:
        if error.errno not in (
            errno.EPERM,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EMLINK,
            errno.EXDEV,
        ):
            raise
        shutil.copy2(target, backup)


def _roll_back(entries: list[dict]) -> None:
    """Put back every target the commit replaced; remove what it staged."""
    for entry in reversed(entries):
        target, staged, backup = Path(entry["target"]), Path(entry["staged"]), entry["backup"]
        if staged.exists():  # not replaced yet: the target is the old file
            _remove([staged] + ([Path(backup)] if backup else []))
        elif backup:
            if Path(backup).exists():
                os.replace(backup, target)
        else:  # a file this commit created
            target.unlink(missing_ok=True)


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
