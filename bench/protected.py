"""The bare app behind the movie app's production middleware (uWSGI ``module = bench.protected:application``).

Rules and the roles hook on the movie database (SQLite), built by the app's own
factory (:func:`bench.production.production`); :mod:`bench.stateless` is the plain
stateless configuration beside it.
"""

from __future__ import annotations

from .apps import bare
from .production import production

__all__ = ["application"]

application = production(bare)
