"""Test helpers: the environ a front end would produce, without any identity provider.

Fake identities live here and only here; the production middleware has no
development switch.
"""

from __future__ import annotations

from .environ import LossyEncodingWarning, environ_for
from .frontend import SAMPLE_USERS, DevFrontEnd

__all__ = ["SAMPLE_USERS", "DevFrontEnd", "LossyEncodingWarning", "environ_for"]
