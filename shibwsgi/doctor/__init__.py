"""``python -m shibwsgi doctor``: the deployment's known pitfalls, each with its fix."""

from __future__ import annotations

from .cli import diagnose, main
from .findings import ERROR, WARNING, Finding, Location

__all__ = ["ERROR", "WARNING", "Finding", "Location", "diagnose", "main"]
