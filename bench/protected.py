"""The bare app behind the movie app's own middleware (uWSGI ``module = bench.protected:application``).

:func:`app.make_application` builds the middleware exactly as production does (from
the environment); swapping its Flask app for :func:`bench.apps.bare` leaves the
middleware's cost, told apart from Flask's.
"""

from __future__ import annotations

from app import make_application

from .apps import bare

__all__ = ["application"]

application = make_application()
application.app = bare
