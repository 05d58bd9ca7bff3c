"""What the doctor reports: one finding per pitfall, with where it is and how to fix it."""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .pitfalls import PITFALLS

__all__ = ["ERROR", "INFO", "MAX_FILE_BYTES", "WARNING", "Finding", "Location", "read_config"]

ERROR = "error"
WARNING = "warning"
INFO = "info"
#: httpd and nginx read configs of any size, but a config file over this is a mistake
#: (``Include /dev/zero``, a log file): the doctor reads no more of it.
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Location:
    """A line in a file (``line`` 0: the file as a whole, or a setting's source)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Finding:
    """One pitfall found: ``pitfall`` is a stable id (for tests and scripts)."""

    severity: str
    pitfall: str
    where: Location
    problem: str
    fix: str

    def __post_init__(self) -> None:
        if self.pitfall not in PITFALLS:
            raise ValueError(f"{self.pitfall!r} is not in shibwsgi.doctor.pitfalls.PITFALLS")

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.problem} Fix: {self.fix} [{self.pitfall}]"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["where"] = str(self.where)
        data["file"], data["line"] = self.where.file, self.where.line
        return data


def read_config(path: Path) -> tuple[str | None, list[Finding]]:
    """The text of a regular config file, or ``None`` and the reason it cannot be checked.

    Only regular files are opened (httpd refuses others; a FIFO would block, ``/dev/zero``
    never ends), and no more than :data:`MAX_FILE_BYTES` is read.
    """
    where = Location(str(path))
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before fstat can refuse it.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                return None, [
                    _unreadable(where, "not a regular file.", "name the configuration file itself.")
                ]
            data = file.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return None, [
            _unreadable(where, f"cannot read it ({reason}).", "check the path and its permissions.")
        ]
    if len(data) > MAX_FILE_BYTES:
        return None, [_too_large(where, len(data))]
    if b"\0" in data:
        return None, [_unreadable(where, "not a text file.", "pass the configuration file itself.")]
    return data.decode("utf-8", errors="replace"), []


def _unreadable(where: Location, problem: str, fix: str) -> Finding:
    return Finding(ERROR, "unreadable-file", where, problem, fix)


def _too_large(where: Location, size: int) -> Finding:
    return Finding(
        ERROR,
        "file-too-large",
        where,
        f"{size} bytes or more: not a config file the doctor reads (over {MAX_FILE_BYTES}).",
        "name the configuration file itself.",
    )
