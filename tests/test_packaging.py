"""What a wheel carries for a newcomer: the licence, and an extra for the pytest plugin."""

from __future__ import annotations

import configparser
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def extra(name: str) -> set[str]:
    lines = setup_cfg()["options.extras_require"][name].split()
    return {line.split(">")[0].split("=")[0].lower() for line in lines if line}


def test_license_file_is_bsd_3_clause_and_shipped() -> None:
    metadata = setup_cfg()["metadata"]
    assert metadata["license"] == "BSD-3-Clause"
    licence = ROOT / metadata["license_files"].strip()
    assert licence.read_text().startswith("BSD 3-Clause License")


def test_no_license_classifier_beside_the_spdx_expression() -> None:
    # setuptools warns ("License classifiers are deprecated") when both are given.
    assert "License ::" not in setup_cfg()["metadata"]["classifiers"]


def test_testing_extra_brings_what_the_pytest_plugin_needs_and_no_tooling() -> None:
    assert extra("testing") == {"webtest"}
    assert extra("testing") <= extra("test")


def test_doctor_is_a_console_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shibwsgi doctor`: what the operator docs run, from the app's virtual environment."""
    scripts = setup_cfg()["options.entry_points"]["console_scripts"]
    name, _, target = (part.strip() for part in scripts.strip().partition("="))
    module, _, function = target.partition(":")
    assert name == "shibwsgi"
    entry = getattr(importlib.import_module(module), function)
    monkeypatch.setattr(sys, "argv", ["shibwsgi"])
    assert entry() == 2  # no command: usage
    assert "usage: shibwsgi {doctor}" in capsys.readouterr().err
