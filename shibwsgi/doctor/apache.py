"""Reading Apache httpd configuration the way httpd does, closely enough to find pitfalls.

``Define`` and ``${VAR}`` (from Defines, then the environment), ``<IfDefine>``,
``<IfModule>`` (against the modules loaded so far, as httpd decides at read time),
``Include``/``IncludeOptional`` with globs, relative to ``ServerRoot``. Directives in
a false conditional are kept, marked inactive: Debian's ``Listen 443`` inside
``<IfModule ssl_module>`` matters precisely when it is inactive.

What httpd refuses is reported, not followed: an include loop, an ``Include`` that
matches nothing, a section left open. Reading is bounded (files, bytes, include depth)
and linear: a directive points at its innermost section, never copies the stack.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .findings import ERROR, MAX_FILE_BYTES, Finding, Location, read_config
from .globs import MAX_ENTRIES, bounded_glob

__all__ = ["Directive", "Section", "read_apache"]

_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|(\S+)')
#: httpd's own include nesting limit (AP_MAX_INCLUDE_DEPTH).
_MAX_DEPTH = 128
_MAX_FILES = 1000
_BROAD = f"makes the doctor read over {MAX_ENTRIES} directory entries (a wildcard high in the tree)"
_MAX_TOTAL_BYTES = 16 * MAX_FILE_BYTES
#: Sections evaluated at read time; any other section (<Location>, <If>...) is request scope.
_READ_TIME = ("ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection")


@dataclass(frozen=True, eq=False)
class Section:
    """An enclosing ``<Name args>`` block; ``parent`` is the one around it."""

    name: str  # lower case: virtualhost, location, ifmodule...
    args: tuple[str, ...]
    where: Location
    parent: Section | None
    active: bool
    virtual_host: Section | None
    #: The innermost request-scope section (``<Location>``, ``<If>``...) from here out: known
    #: once, so a directive deep in sections finds it in constant time.
    scope: Section | None = None

    def chain(self) -> Iterator[Section]:
        """This section, then each enclosing one."""
        section: Section | None = self
        while section is not None:
            yield section
            section = section.parent


def _open_section(
    name: str, args: tuple[str, ...], where: Location, parent: Section | None, active: bool
) -> Section:
    host = parent.virtual_host if parent is not None else None
    section = Section(name, args, where, parent, active, host)
    if name == "virtualhost":
        object.__setattr__(section, "virtual_host", section)
    request_scope = name not in _READ_TIME and name != "virtualhost"
    object.__setattr__(section, "scope", section if request_scope else parent.scope if parent else None)
    return section


@dataclass(frozen=True)
class Directive:
    name: str  # lower case
    args: tuple[str, ...]
    where: Location
    section: Section | None  # the innermost enclosing section
    active: bool

    @property
    def virtual_host(self) -> Section | None:
        return self.section.virtual_host if self.section is not None else None

    @property
    def sections(self) -> tuple[Section, ...]:
        """The enclosing sections, outermost first."""
        return tuple(reversed(list(self.section.chain()))) if self.section is not None else ()

    @property
    def scope(self) -> Section | None:
        """The innermost enclosing request-scope section (``<Location>``, ``<If>``...), if any."""
        return self.section.scope if self.section is not None else None

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
    reading: set[str] = field(default_factory=set)  # files being read now (an include chain)
    files: int = 0
    size: int = 0  # bytes read, and bytes ${VAR} expansion made of them
    stopped: bool = False  # a loop or a cap: httpd would not start; stop following includes

    def stop(self, finding: Finding) -> None:
        self.problems.append(finding)
        self.stopped = True


def read_apache(
    path: str | Path, *, defines: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[list[Directive], list[Finding]]:
    """All directives of ``path`` and its includes, and problems reading them."""
    path = Path(path)
    state = _State(
        dict(defines or {}), os.environ if environ is None else environ, Path(os.path.abspath(path)).parent
    )
    _read_file(state, path, None, True, 0)
    return state.directives, state.problems


def _read_file(state: _State, path: Path, parent: Section | None, active: bool, depth: int) -> None:
    real = os.path.realpath(path)
    state.files += 1
    if state.files > _MAX_FILES:
        state.stop(_cap(path, f"more than {_MAX_FILES} files are included"))
        return
    text, problems = read_config(path)
    state.problems += problems
    if text is None:
        return
    state.size += len(text)
    if state.size > _MAX_TOTAL_BYTES:
        state.stop(_cap(path, f"the included files add up to more than {_MAX_TOTAL_BYTES} bytes"))
        return
    state.reading.add(real)
    try:
        _read_lines(state, path, text, parent, active, depth)
    finally:
        state.reading.discard(real)


def _read_lines(
    state: _State, path: Path, text: str, parent: Section | None, active: bool, depth: int
) -> None:
    section = parent
    for number, line in _logical_lines(text):
        where = Location(str(path), number)
        expanded = _expand(state, line)
        if expanded is None or state.size > _MAX_TOTAL_BYTES:
            state.stop(_cap(path, f"line {number}: ${{...}} expands past what the doctor reads"))
            return
        line = expanded
        if line.startswith("</"):
            name = line[2:].rstrip(">").strip().lower()
            if section is parent or section is None:
                state.problems.append(_unbalanced(where, f"</{name}> closes no section opened in this file"))
            else:
                if name != section.name:
                    state.problems.append(_unbalanced(where, f"expected </{section.name}> but saw </{name}>"))
                section = section.parent
            continue
        inner = section.active if section is not None and section is not parent else active
        if line.startswith("<"):
            if not line.endswith(">"):
                state.problems.append(_unbalanced(where, f"{line.split()[0]} directive missing closing '>'"))
            name, args = _split(line[1:-1] if line.endswith(">") else line[1:])
            lower = name.lower()
            holds = inner and _condition(state, lower, args)
            section = _open_section(lower, args, where, section, holds)
            continue
        name, args = _split(line)
        directive = Directive(name.lower(), args, where, section, inner)
        state.directives.append(directive)
        if directive.active:
            _apply(state, directive, depth)
    while section is not parent and section is not None:
        state.problems.append(
            _unbalanced(
                section.where, f'<{section.name}> is not closed in this file (httpd: "was not closed")'
            )
        )
        section = section.parent


def _expand(state: _State, line: str) -> str | None:
    """``line`` with each ``${VAR}`` replaced; None past ``MAX_FILE_BYTES`` (``Define A ${A}${A}`` doubles)."""
    pieces, size, end = [], 0, 0
    for match in _VARIABLE.finditer(line):
        name = match.group(1)
        value = state.defines.get(name, state.environ.get(name, match.group(0)))
        size += match.start() - end + len(value)
        if size > MAX_FILE_BYTES:
            return None
        pieces += [line[end : match.start()], value]
        end = match.end()
    if not pieces:
        return line
    state.size += size
    return "".join(pieces) + line[end:]


def _unbalanced(where: Location, problem: str) -> Finding:
    return Finding(
        ERROR,
        "unterminated-section",
        where,
        f"{problem}: httpd refuses to start.",
        "close each section in the file that opens it.",
    )


def _cap(path: Path, problem: str) -> Finding:
    return Finding(
        ERROR,
        "file-too-large",
        Location(str(path)),
        f"{problem}: the doctor stops following includes here.",
        "check what includes what.",
    )


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
    elif name in ("include", "includeoptional") and args and not state.stopped:
        _include(state, directive, depth)


def _include(state: _State, directive: Directive, depth: int) -> None:
    pattern = directive.args[0]
    if not os.path.isabs(pattern):
        pattern = str(state.server_root / pattern)
    if glob.has_magic(pattern):
        matches, broad = bounded_glob(pattern, _MAX_FILES + 1)
        if broad:
            state.stop(_cap(Path(directive.where.file), f"{directive.where}: {pattern} {_BROAD}"))
            return
    else:
        matches = [pattern] if os.path.lexists(pattern) else []
    if not matches and directive.name == "include":
        what = "matches no file" if glob.has_magic(pattern) else "does not exist"
        state.problems.append(
            Finding(
                ERROR,
                "missing-include",
                directive.where,
                f"Include {pattern} {what}: httpd will not start.",
                f"fix the path, or IncludeOptional {directive.args[0]}",
            )
        )
    if depth >= _MAX_DEPTH:
        state.stop(_loop(directive, f"includes nest more than {_MAX_DEPTH} deep"))
        return
    for file in _files(matches):
        if state.stopped:
            return
        if os.path.realpath(file) in state.reading:
            state.stop(_loop(directive, f"{file} includes itself (through this line)"))
            return
        _read_file(state, Path(file), directive.section, True, depth + 1)


def _loop(directive: Directive, problem: str) -> Finding:
    return Finding(
        ERROR,
        "include-loop",
        directive.where,
        f"{problem}: httpd refuses to start.",
        "check what includes what; include each file once.",
    )


def _files(matches: list[str]) -> Iterator[str]:
    """Each match, a directory as the files under it (sorted, symlinked directories not entered)."""
    for match in matches:
        if not os.path.isdir(match):
            yield match
            continue
        for folder, dirs, files in os.walk(match):
            dirs.sort()
            yield from (os.path.join(folder, name) for name in sorted(files))


def _condition(state: _State, name: str, args: tuple[str, ...]) -> bool:
    if name not in ("ifmodule", "ifdefine") or not args:
        return True
    argument = args[0]
    negated = argument.startswith("!")
    argument = argument.lstrip("!")
    holds = argument in (state.defines if name == "ifdefine" else state.modules)
    return holds != negated


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending:
            start = number
            if not stripped or stripped.startswith("#"):
                continue
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def _split(line: str) -> tuple[str, tuple[str, ...]]:
    """Words as httpd's ap_getword_conf splits them: white space, or quoted with \\ escapes."""
    words = []
    for match in _WORD.finditer(line):
        double, single, bare = match.groups()
        if double is not None:
            words.append(double.replace('\\"', '"'))
        elif single is not None:
            words.append(single.replace("\\'", "'"))
        else:
            words.append(bare)
    if not words:
        return "", ()
    return words[0], tuple(words[1:])
