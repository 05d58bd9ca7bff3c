"""What the doctor reports: one finding per pitfall, with where it is and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["ERROR", "WARNING", "Finding", "Location", "read_config"]

ERROR = "error"
WARNING = "warning"


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

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.problem} Fix: {self.fix} [{self.pitfall}]"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["where"] = str(self.where)
        data["file"], data["line"] = self.where.file, self.where.line
        return data


def read_config(path: Path) -> tuple[str | None, list[Finding]]:
    """The text of a config file, or ``None`` and the reason it cannot be checked."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        problem = f"cannot read it ({exc.strerror})."
        return None, [
            Finding(
                ERROR, "unreadable-file", Location(str(path)), problem, "check the path and its permissions."
            )
        ]
    if "\0" in text:
        return None, [
            Finding(
                ERROR,
                "unreadable-file",
                Location(str(path)),
                "not a text file.",
                "pass the configuration file itself.",
            )
        ]
    return text, []
