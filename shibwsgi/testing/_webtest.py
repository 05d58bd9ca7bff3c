"""WebTest, imported without WebOb's warning about the ``cgi`` module.

WebOb (WebTest's base) imports the deprecated ``cgi`` module on Python 3.11 and
3.12; a test suite run with ``-W error`` (or ``filterwarnings = error``) would
fail on a warning it cannot fix. The warning is silenced for this import only.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    from webtest import TestApp

__all__ = ["TestApp"]
