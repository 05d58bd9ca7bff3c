"""``shibwsgi doctor``: the deployment's known pitfalls, each with its fix; ``--probe``: a live check."""

from __future__ import annotations

from .cli import diagnose, main
from .findings import ERROR, INFO, WARNING, Finding, Location
from .pitfalls import PITFALLS

__all__ = ["ERROR", "INFO", "PITFALLS", "WARNING", "Finding", "Location", "diagnose", "main"]
