"""Reading an nginx configuration into blocks of directives (``include`` followed)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from .findings import Finding, Location, read_config

__all__ = ["Block", "NginxDirective", "read_nginx"]

_MAX_DEPTH = 16


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

    def get(self, name: str) -> list[NginxDirective]:
        return [d for d in self.directives if d.name == name]

    def walk(self) -> list[Block]:
        blocks = [self]
        for child in self.children:
            blocks.extend(child.walk())
        return blocks

    def inherited(self, name: str) -> list[NginxDirective]:
        """nginx's array inheritance: a level that sets ``name`` at all hides every outer one."""
        block: Block | None = self
        while block is not None:
            own = block.get(name)
            if own:
                return own
            block = block.parent
        return []


def read_nginx(path: str | Path) -> tuple[Block, list[Finding]]:
    """The main block of ``path`` (its includes spliced in), and problems reading it."""
    path = Path(path)
    root = Block("main", (), Location(str(path)))
    problems: list[Finding] = []
    _read(path, root, problems, 0)
    return root, problems


def _read(path: Path, block: Block, problems: list[Finding], depth: int) -> Block:
    text, unreadable = read_config(path)
    problems += unreadable
    if text is None:
        return block
    words: list[str] = []
    start = 0
    for word, line in _tokens(text):
        where = Location(str(path), start or line)
        if word == "{":
            child = Block(words[0] if words else "", tuple(words[1:]), where, block)
            block.children.append(child)
            block, words, start = child, [], 0
        elif word == "}":
            if block.parent is not None:
                block = block.parent
            words, start = [], 0
        elif word == ";":
            if words:
                directive = NginxDirective(words[0], tuple(words[1:]), where)
                if directive.name == "include" and directive.args and depth < _MAX_DEPTH:
                    pattern = directive.args[0]
                    if not os.path.isabs(pattern):
                        pattern = str(path.parent / pattern)
                    for match in sorted(glob.glob(pattern)):
                        _read(Path(match), block, problems, depth + 1)
                else:
                    block.directives.append(directive)
            words, start = [], 0
        else:
            if not words:
                start = line
            words.append(word)
    return block


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
                end += 1
            tokens.append((text[i:end], line))
            i = end
    return tokens
