"""Reading a uwsgi ini file: every ``key = value`` of its ``[uwsgi]`` section, repeats kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .findings import WARNING, Finding, Location, read_config

__all__ = ["Option", "read_uwsgi"]


@dataclass(frozen=True)
class Option:
    key: str
    value: str
    where: Location


def read_uwsgi(path: str | Path) -> tuple[list[Option] | None, list[Finding]]:
    """The options (``None`` when the file cannot be read) and problems reading it."""
    path = Path(path)
    text, problems = read_config(path)
    if text is None:
        return None, problems
    options: list[Option] = []
    section = None
    sections = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            sections.add(section)
            continue
        key, equals, value = line.partition("=")
        if section == "uwsgi" and equals:
            options.append(
                Option(key.strip().lower().replace("_", "-"), value.strip(), Location(str(path), number))
            )
    if "uwsgi" not in sections:
        problem = Finding(
            WARNING,
            "not-uwsgi-ini",
            Location(str(path)),
            "no [uwsgi] section: uWSGI reads nothing from it.",
            "put the options under [uwsgi].",
        )
        return options, [problem]
    return options, []
