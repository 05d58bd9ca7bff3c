"""The bare app behind a plain stateless shibwsgi (uWSGI ``module = bench.stateless:application``).

The movie app's own profile and attributes, nothing else: no rules, no roles hook,
no session (:func:`bench.production.plain`). Beside :mod:`bench.protected` it tells
what the production options (rules, roles on SQLite) add to the identity's cost.
"""

from __future__ import annotations

from .apps import bare
from .production import plain

__all__ = ["application"]

application = plain(bare)
