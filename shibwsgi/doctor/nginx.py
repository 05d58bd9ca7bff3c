"""Reading an nginx configuration into blocks of directives (``include`` followed).

What nginx refuses is reported, not followed: an include of a missing file or a loop, a
block left open or closed twice. Reading is bounded in files, bytes and depth.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .findings import ERROR, MAX_FILE_BYTES, Finding, Location, read_config
from .globs import MAX_ENTRIES, bounded_glob

__all__ = ["Block", "NginxDirective", "read_nginx"]

_MAX_DEPTH = 128
_MAX_FILES = 1000
_MAX_TOTAL_BYTES = 16 * MAX_FILE_BYTES


@dataclass(frozen=True)
class NginxDirective:
    name: str
    args: tuple[str, ...]
    where: Location


@dataclass
class Block:
    """``http``, ``server``, ``location ...``: its own directives and inner blocks."""

    name: str
    args: tuple[str, ...]
    where: Location
    parent: Block | None = None
    directives: list[NginxDirective] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)
    #: Lookups up the chain of blocks, remembered: nesting is unbounded, checks stay linear.
    _nearest: dict[tuple[str, str], Block | None] = field(default_factory=dict, repr=False, compare=False)

    def get(self, name: str) -> list[NginxDirective]:
        return [d for d in self.directives if d.name == name]

    def walk(self) -> list[Block]:
        """This block and every block inside it, in file order (no recursion: nesting is unbounded)."""
        blocks: list[Block] = []
        pending = [self]
        while pending:
            block = pending.pop()
            blocks.append(block)
            pending.extend(reversed(block.children))
        return blocks

    def inherited(self, name: str) -> list[NginxDirective]:
        """nginx's array inheritance: a level that sets ``name`` at all hides every outer one."""
        origin = self.defining(name)
        return origin.get(name) if origin is not None else []

    def defining(self, name: str) -> Block | None:
        """The innermost block, this one or one around it, that sets directive ``name``."""
        return self._up(("directive", name), lambda block: bool(block.get(name)))

    def within(self, name: str) -> Block | None:
        """The innermost block named ``name`` (``server``...), this one or one around it."""
        return self._up(("block", name), lambda block: block.name == name)

    def _up(self, key: tuple[str, str], holds: Callable[[Block], bool]) -> Block | None:
        """The innermost block up the chain where ``holds``, remembered in every block passed."""
        passed: list[Block] = []
        block: Block | None = self
        while block is not None and key not in block._nearest:
            if holds(block):
                block._nearest[key] = block
                break
            passed.append(block)
            block = block.parent
        found = block._nearest[key] if block is not None else None
        for each in passed:
            each._nearest[key] = found
        return found


@dataclass
class _State:
    prefix: Path  # where nginx resolves a relative include: the main config's folder (-c FILE)
    problems: list[Finding] = field(default_factory=list)
    reading: set[str] = field(default_factory=set)
    files: int = 0
    size: int = 0
    stopped: bool = False

    def stop(self, finding: Finding) -> None:
        self.problems.append(finding)
        self.stopped = True


def read_nginx(path: str | Path) -> tuple[Block, list[Finding]]:
    """The main block of ``path`` (its includes spliced in), and problems reading it."""
    path = Path(path)
    root = Block("main", (), Location(str(path)))
    state = _State(path.parent)
    _read(state, path, root, 0)
    return root, state.problems


def _read(state: _State, path: Path, start: Block, depth: int) -> None:
    state.files += 1
    if state.files > _MAX_FILES:
        state.stop(
            _refused("file-too-large", Location(str(path)), f"more than {_MAX_FILES} files are included")
        )
        return
    text, unreadable = read_config(path)
    state.problems += unreadable
    if text is None:
        return
    state.size += len(text)
    if state.size > _MAX_TOTAL_BYTES:
        state.stop(_refused("file-too-large", Location(str(path)), "the included files are too large in all"))
        return
    real = os.path.realpath(path)
    state.reading.add(real)
    try:
        _parse(state, path, text, start, depth)
    finally:
        state.reading.discard(real)


def _parse(state: _State, path: Path, text: str, start: Block, depth: int) -> None:
    block = start
    words: list[str] = []
    first = 0
    for word, line in _tokens(text):
        where = Location(str(path), first or line)
        if word == "{":
            child = Block(words[0] if words else "", tuple(words[1:]), where, block)
            block.children.append(child)
            block, words, first = child, [], 0
        elif word == "}":
            if words:
                state.problems.append(
                    _refused("unterminated-section", where, f'"{words[0]}" has no ";" before "}}"')
                )
            if block is start:
                state.problems.append(_refused("unterminated-section", where, 'unexpected "}"'))
            elif block.parent is not None:
                block = block.parent
            words, first = [], 0
        elif word == ";":
            if words:
                directive = NginxDirective(words[0], tuple(words[1:]), where)
                if directive.name == "include" and directive.args:
                    _include(state, directive, block, depth)
                else:
                    block.directives.append(directive)
            words, first = [], 0
        else:
            if not words:
                first = line
            words.append(word)
    end = Location(str(path), text.count("\n") + 1)
    if words:
        state.problems.append(
            _refused("unterminated-section", end, 'unexpected end of file, expecting ";" or "}"')
        )
    while block is not start and block.parent is not None:
        state.problems.append(
            _refused(
                "unterminated-section",
                block.where,
                f'"{block.name}" block not closed: unexpected end of file',
            )
        )
        block = block.parent


def _include(state: _State, directive: NginxDirective, block: Block, depth: int) -> None:
    if state.stopped:
        return
    pattern = directive.args[0]
    if not os.path.isabs(pattern):
        pattern = str(state.prefix / pattern)  # nginx: relative to the main config, not this file
    if glob.has_magic(pattern):
        matches, broad = bounded_glob(pattern, _MAX_FILES + 1)
        if broad:
            problem = f"include {pattern} makes the doctor read over {MAX_ENTRIES} directory entries"
            state.stop(_refused("file-too-large", directive.where, problem))
            return
    elif os.path.lexists(pattern):
        matches = [pattern]
    else:
        state.problems.append(
            _refused(
                "missing-include",
                directive.where,
                f"include {pattern}: open() failed (No such file or directory)",
            )
        )
        return
    if depth >= _MAX_DEPTH:
        state.stop(_refused("include-loop", directive.where, f"includes nest more than {_MAX_DEPTH} deep"))
        return
    for match in matches:
        if state.stopped:
            return
        if os.path.realpath(match) in state.reading:
            state.stop(
                _refused("include-loop", directive.where, f"{match} includes itself (through this line)")
            )
            return
        _read(state, Path(match), block, depth + 1)


def _refused(pitfall: str, where: Location, problem: str) -> Finding:
    return Finding(
        ERROR,
        pitfall,
        where,
        f"{problem}: nginx refuses this config.",
        "nginx -t shows the same; fix it there.",
    )


def _tokens(text: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    line, i, n = 1, 0, len(text)
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
        elif char.isspace():
            i += 1
        elif char == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif char in "{};":
            tokens.append((char, line))
            i += 1
        elif char in "\"'":
            end = i + 1
            while end < n and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            tokens.append((text[i + 1 : end], line))
            line += text.count("\n", i, end)
            i = end + 1
        else:
            end = i
            while end < n and not text[end].isspace() and text[end] not in "{};":
                # ${name} is a variable inside a word, not a block
                end = text.find("}", end) + 1 or n if text.startswith("${", end) else end + 1
            tokens.append((text[i:end], line))
            i = end
    return tokens
