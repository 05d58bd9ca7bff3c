"""The ``shibwsgi`` console script: ``shibwsgi doctor ...`` and ``shibwsgi --help``."""

from __future__ import annotations

import configparser
import importlib
from pathlib import Path

import pytest

from shibwsgi.__main__ import main

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def test_console_script_is_declared_and_importable() -> None:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    scripts = dict(
        line.replace(" ", "").split("=", 1)
        for line in config["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    module, _, function = scripts["shibwsgi"].partition(":")
    assert getattr(importlib.import_module(module), function) is main


def test_help_names_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "doctor" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [pytest.param([], id="no command"), pytest.param(["cure"], id="unknown command")]
)
def test_unknown_command_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: shibwsgi" in capsys.readouterr().err


def test_doctor_command_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nbuffer-size = 65535\n")
    assert main(["doctor", "--uwsgi", str(ini)]) == 0
    assert "0 error(s)" in capsys.readouterr().out
