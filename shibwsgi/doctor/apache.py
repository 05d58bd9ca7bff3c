"""Reading Apache httpd configuration the way httpd does, closely enough to find pitfalls.

``Define`` and ``${VAR}`` (from Defines, then the environment), ``<IfDefine>``,
``<IfModule>`` (against the modules loaded so far, as httpd decides at read time),
``Include``/``IncludeOptional`` with globs, relative to ``ServerRoot``. Directives in
a false conditional are kept, marked inactive: Debian's ``Listen 443`` inside
``<IfModule ssl_module>`` matters precisely when it is inactive.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .findings import ERROR, Finding, Location, read_config

__all__ = ["Directive", "Section", "read_apache"]

_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_MAX_DEPTH = 16


@dataclass(frozen=True)
class Section:
    """An enclosing ``<Name args>`` block."""

    name: str  # lower case: virtualhost, location, ifmodule...
    args: tuple[str, ...]
    where: Location


@dataclass(frozen=True)
class Directive:
    name: str  # lower case
    args: tuple[str, ...]
    where: Location
    sections: tuple[Section, ...]
    active: bool

    @property
    def virtual_host(self) -> Section | None:
        return next((s for s in reversed(self.sections) if s.name == "virtualhost"), None)

    def arg(self, index: int, default: str = "") -> str:
        return self.args[index] if len(self.args) > index else default


@dataclass
class _State:
    defines: dict[str, str]
    environ: Mapping[str, str]
    server_root: Path
    modules: set[str] = field(default_factory=set)
    directives: list[Directive] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)


def read_apache(
    path: str | Path, *, defines: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[list[Directive], list[Finding]]:
    """All directives of ``path`` and its includes, and problems reading them."""
    path = Path(path)
    state = _State(dict(defines or {}), os.environ if environ is None else environ, path.resolve().parent)
    _read_file(state, path, (), True, 0)
    return state.directives, state.problems


def _read_file(state: _State, path: Path, sections: tuple[Section, ...], active: bool, depth: int) -> None:
    text, problems = read_config(path)
    state.problems += problems
    if text is None:
        return
    stack = list(sections)
    actives = [active]
    for number, line in _logical_lines(text):
        where = Location(str(path), number)
        line = _VARIABLE.sub(
            lambda m: state.defines.get(m.group(1), state.environ.get(m.group(1), m.group(0))), line
        )
        if line.startswith("</"):
            if len(stack) > len(sections):
                stack.pop()
                actives.pop()
            continue
        if line.startswith("<"):
            name, args = _split(line[1:].rstrip(">").rstrip())
            section = Section(name.lower(), args, where)
            stack.append(section)
            actives.append(actives[-1] and _condition(state, section))
            continue
        name, args = _split(line)
        directive = Directive(name.lower(), args, where, tuple(stack), actives[-1])
        state.directives.append(directive)
        if directive.active:
            _apply(state, directive, depth)


def _apply(state: _State, directive: Directive, depth: int) -> None:
    name, args = directive.name, directive.args
    if name == "define" and args:
        state.defines[args[0]] = args[1] if len(args) > 1 else ""
    elif name == "undefine" and args:
        state.defines.pop(args[0], None)
    elif name == "serverroot" and args:
        state.server_root = Path(args[0])
    elif name == "loadmodule" and len(args) > 1:
        state.modules.add(args[0])
        state.modules.add(Path(args[1]).stem + ".c")  # <IfModule mod_ssl.c> names the source file
    elif name in ("include", "includeoptional") and args:
        _include(state, directive, depth)


def _include(state: _State, directive: Directive, depth: int) -> None:
    pattern = directive.args[0]
    if not os.path.isabs(pattern):
        pattern = str(state.server_root / pattern)
    matches = sorted(glob.glob(pattern))
    if not matches and directive.name == "include" and not glob.has_magic(pattern):
        state.problems.append(
            Finding(
                ERROR,
                "missing-include",
                directive.where,
                f"Include {pattern} does not exist: httpd will not start.",
                "fix the path, or use IncludeOptional.",
            )
        )
    if depth >= _MAX_DEPTH:
        state.problems.append(
            Finding(
                ERROR,
                "include-loop",
                directive.where,
                "Includes nest too deeply (a loop?): httpd refuses to start.",
                "check what includes what.",
            )
        )
        return
    for match in matches:
        target = Path(match)
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for file in files:
            _read_file(state, file, directive.sections, True, depth + 1)


def _condition(state: _State, section: Section) -> bool:
    if section.name not in ("ifmodule", "ifdefine") or not section.args:
        return True
    argument = section.args[0]
    negated = argument.startswith("!")
    argument = argument.lstrip("!")
    holds = argument in (state.defines if section.name == "ifdefine" else state.modules)
    return holds != negated


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending:
            start = number
            if not stripped or stripped.startswith("#"):
                continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append((start, pending + stripped))
        pending = ""
    if pending:
        lines.append((start, pending))
    return lines


def _split(line: str) -> tuple[str, tuple[str, ...]]:
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError:  # an unbalanced quote: httpd would complain too; keep going
        words = line.split()
    if not words:
        return "", ()
    return words[0], tuple(words[1:])
