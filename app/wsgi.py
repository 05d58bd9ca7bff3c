"""The WSGI entry point for uWSGI: ``module = app.wsgi:application``.

Configured entirely from the environment (uwsgi.ini ``env = ...``): ``MOVIES_*``
for the app and ``SHIBWSGI_*`` for the middleware, see :mod:`app`. Importing
this module builds the app and creates its database.
"""

from __future__ import annotations

from . import make_application

__all__ = ["application", "make_application"]

application = make_application()
