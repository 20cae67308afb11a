"""A durable spool: records taken while Redis is down, kept on disk until they are replayed.

Where: ``<instance>/spool/<name>.jsonl`` (the SMS webhook's is ``instance/spool/sms.jsonl``,
the phone line's call counts ``instance/spool/calls.jsonl``), one JSON object per line,
appended only. Every process on the host appends to the same file: each append opens it
with ``O_APPEND``, takes an exclusive ``flock``, writes its lines (one record, or a group
of them: :meth:`Spool.append_many`) in one ``write``, ``fsync``\\ s it and only then
returns, so a record the caller confirmed is on disk, and lines of different greenlets,
threads and processes never mix.

Replay claims the file first: it renames ``sms.jsonl`` to
``sms.<UTC time>-<pid>-<random>.claimed.jsonl`` (new records go to a fresh ``sms.jsonl``;
a writer that opened the old file just before the rename notices under its lock that the
name no longer points at its file and writes to the new one) and waits on the claimed
file's lock, so a write in flight has finished. A claimed file is replayed in order by
whichever replayer holds the lock on its ``.progress`` file beside it (the kernel drops a
dead process's lock, so another replayer or the next pass resumes an interrupted replay);
after each record the offset of the next one is written there and fsynced. When a claimed
file is done it is deleted with its progress file. Replaying a record twice is still
possible (a crash between applying one and writing its offset); the handler makes that
harmless (complaints carry an idempotency id checked in the same Redis script that stores
them; a call is counted once per call SID). A handler for which that is harmless may let
replay fsync its offset only every so many records (``sync_every``), for speed.

To inspect it, on the host: ``ls -l instance/spool/`` (nothing there means nothing waits),
``wc -l instance/spool/*.jsonl`` (records waiting, including claimed files not yet done),
``cat instance/spool/*.progress`` (byte offset reached in the matching claimed file), and
``python -c 'import json,sys; [print(json.loads(l)) for l in open(sys.argv[1])]' FILE``.
Never edit a file in place; to hold records back, move the file out of the folder.
``sms-unsorted.jsonl`` (same format, never replayed by itself) holds spooled texts that
could not be logged (no category named and no ``other`` category): an operator logs them
by hand, or adds an ``other`` category and moves the file's lines into ``sms.jsonl``.

Plain Python and the file system: no Flask, no Redis (the handler brings those).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Suffix of a file a replayer has taken over, and of the offset file beside it.
CLAIMED = ".claimed.jsonl"
PROGRESS = ".progress"
#: Width of the offset written in a progress file (one small write: never torn).
_OFFSET_WIDTH = 20


def _fsync_folder(folder: Path) -> None:
    """Make a created, renamed or deleted name in ``folder`` survive a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Spool:
    """One named append-only spool under a folder (created when first needed)."""

    def __init__(self, folder: str | os.PathLike[str], name: str):
        self.folder = Path(folder)
        self.name = name

    @property
    def path(self) -> Path:
        """The file new records are appended to."""
        return self.folder / f"{self.name}.jsonl"

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and return only once it is on disk (fsync)."""
        self.append_many([record])

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """Write ``records`` as lines, in order, in one write and one fsync (a group commit);
        return only once they are on disk. A crash mid-write can leave only the last line
        torn, which replay skips."""
        if not records:
            return
        line = b"".join(
            (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            for record in records
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    continue  # claimed between our open and our lock: append to the new file
                mine = os.fstat(fd)
                if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
                    continue
                created = mine.st_size == 0
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)  # also releases the lock
            if created:
                _fsync_folder(self.folder)
            return

    def has_waiting(self) -> bool:
        """Return True when records may wait (a non-empty file or a claimed one): a check of
        the file system only, cheap enough to make every few seconds."""
        try:
            if os.stat(self.path).st_size > 0:
                return True
        except FileNotFoundError:
            pass
        return bool(self._claimed())

    def waiting(self) -> list[dict[str, Any]]:
        """Return the records not replayed yet, oldest first (claimed files, then new ones)."""
        records: list[dict[str, Any]] = []
        for path in [*self._claimed(), self.path]:
            offset = self._offset(Path(f"{path}{PROGRESS}"))
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    records.extend(record for _end, record in _lines(handle.read(), offset))
            except FileNotFoundError:
                continue
        return records

    def replay(self, handle: Callable[[dict[str, Any]], None], sync_every: int = 1) -> int:
        """Hand every waiting record to ``handle``, oldest first; return how many were handled.

        A record counts as done once ``handle`` returns; if it raises, the replay stops
        there and the exception propagates (the record is handed over again next time).
        Files another replayer is working on are left to it. The offset reached is written
        after every record and fsynced every ``sync_every`` records (and at the end): a
        larger value suits handlers for which a record handled again is harmless and many
        records wait, since each fsync blocks the process for a few milliseconds (only a
        crash of the host, not of the process, can lose an offset not yet fsynced).
        """
        self._claim()
        done = 0
        for path in self._claimed():
            done += self._replay_file(path, handle, max(1, sync_every))
        return done

    def _claimed(self) -> list[Path]:
        """Return the claimed files, oldest claim first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"{self.name}.*{CLAIMED}"))

    def _claim(self) -> None:
        """Take the current file over (if it has anything) and wait for a write in flight."""
        try:
            if os.stat(self.path).st_size == 0:
                return
        except FileNotFoundError:
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        claimed = (
            self.folder
            / f"{self.name}.{stamp}-{time.monotonic_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}{CLAIMED}"
        )
        try:
            os.rename(self.path, claimed)
        except FileNotFoundError:
            return  # another replayer claimed it first
        _fsync_folder(self.folder)
        fd = os.open(claimed, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a writer holding it finishes its line first
        finally:
            os.close(fd)

    @staticmethod
    def _offset(progress: Path) -> int:
        try:
            text = progress.read_text().strip()
        except FileNotFoundError:
            return 0
        return int(text) if text.isdigit() else 0

    def _replay_file(self, path: Path, handle: Callable[[dict[str, Any]], None], sync_every: int = 1) -> int:
        progress = Path(f"{path}{PROGRESS}")
        with _held(progress) as fd:
            if fd is None:
                return 0  # another replayer has it
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                # Finished by another replayer just before we took the lock: drop our empty marker.
                progress.unlink(missing_ok=True)
                return 0
            start = os.pread(fd, _OFFSET_WIDTH + 1, 0).decode().strip()
            offset = int(start) if start.isdigit() else 0
            done = 0
            try:
                for end, record in _lines(data[offset:], offset):
                    handle(record)
                    os.pwrite(fd, f"{end:0{_OFFSET_WIDTH}d}\n".encode(), 0)
                    done += 1
                    if done % sync_every == 0:
                        os.fsync(fd)
            finally:
                if done % sync_every:
                    os.fsync(fd)
            if len(data) > offset and not data.endswith(b"\n"):
                log.error("spool %s ends in a partial line (a writer died mid-write); it was skipped", path)
            path.unlink()
            progress.unlink(missing_ok=True)
            _fsync_folder(self.folder)
            return done


def _lines(data: bytes, base: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (offset just after the line, record) for each complete line of ``data``."""
    position = 0
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            return
        raw = data[position:end]
        position = end + 1
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            log.error("spool line at byte %d is not JSON and was skipped: %r", base + position, raw[:200])
            continue
        if isinstance(record, dict):
            yield base + position, record


@contextmanager
def _held(progress: Path) -> Iterator[int | None]:
    """Open ``progress`` and hold its lock without waiting; yield its descriptor, or None
    when another process holds it."""
    fd = os.open(progress, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield None
                return
            raise
        yield fd
    finally:
        os.close(fd)
