"""The environment files the docs show survive `set -a; . file` and systemd's EnvironmentFile alike."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from shibwsgi.settings import parse_settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "apache" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
#: Settings whose conversion acts (opens a store, imports a hook): checked by their own tests.
ACTING = {"SHIBWSGI_SESSION", "SHIBWSGI_ROLES", "SHIBWSGI_ERROR_PAGE"}


def _plain(line: str) -> bool:
    """``NAME=value`` and nothing after it (comments aside)."""
    try:
        return len(shlex.split(line, comments=True)) == 1
    except ValueError:  # an unclosed quote
        return False


def env_blocks() -> list[pytest.ParameterSet]:
    """Every fenced ``sh`` block of NAME=value lines and comments.

    A block where no line is a plain assignment is commands run with variables
    (``SHIBWSGI_PROFILE=openidc make demo``), not an environment file.
    """
    blocks = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"^( *)```sh\n(.*?)^\1```", text, re.S | re.M):
            lines = [line.strip() for line in match.group(2).splitlines()]
            settings = [line for line in lines if line and not line.startswith("#")]
            if all(ASSIGNMENT.match(line) for line in settings) and any(map(_plain, settings)):
                line_number = text[: match.start()].count("\n") + 1
                blocks.append(pytest.param(settings, id=f"{doc.relative_to(ROOT)}:{line_number}"))
    return blocks


@pytest.mark.parametrize("lines", env_blocks())
def test_env_example_survives_sourcing(lines: list[str], tmp_path: Path) -> None:
    expected = {}
    for line in lines:
        name, value = ASSIGNMENT.match(line).groups()  # type: ignore[union-attr]
        words = shlex.split(value)
        # One word: a value with spaces unquoted, or a trailing comment, would be cut (and systemd
        # would keep the comment in the value).
        assert len(words) == 1, f"{line!r}: quote the value and put comments on their own line"
        expected[name] = words[0]
    env_file = tmp_path / "env"
    env_file.write_text("\n".join(lines) + "\n")
    shell = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; set +a; env -0', "bash", str(env_file)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )
    seen = dict(item.split("=", 1) for item in shell.stdout.decode().split("\0") if item)
    for name, value in expected.items():
        assert seen.get(name) == value, name
    strays = set(seen) - set(expected) - {"PATH", "PWD", "SHLVL", "_", "OLDPWD"}
    assert not strays, f"sourcing also set {sorted(strays)}"
    parse_settings({name: value for name, value in expected.items() if name not in ACTING})


def test_env_examples_are_found() -> None:
    assert len(env_blocks()) >= 6
