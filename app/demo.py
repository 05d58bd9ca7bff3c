"""The demo app behind the development front end: ``make demo``, no identity provider needed.

``module = app.demo:application`` (see ``app/demo-uwsgi.ini``). The same
``SHIBWSGI_*`` variables configure :mod:`app.wsgi` and the front end's profile,
channel and protected login path. ``DEVFRONTEND_SECRET_KEY`` signs the front
end's cookie; the ini sets a random one per run, shared by the workers.
Development only: anyone who can reach it can sign in as anyone.
"""

from __future__ import annotations

import os

import app.wsgi
from shibwsgi.settings import optional_path
from shibwsgi.testing.frontend import DevFrontEnd

__all__ = ["application"]

_login_path = optional_path(os.environ.get("SHIBWSGI_LOGIN_PATH", "/login"))

application = DevFrontEnd(
    app.wsgi.application,
    profile=os.environ.get("SHIBWSGI_PROFILE", "shibboleth"),
    channel=os.environ.get("SHIBWSGI_CHANNEL") or None,
    secret_key=os.environ.get("DEVFRONTEND_SECRET_KEY") or None,
    # As Apache protects the login path (Require shib-session) in the real deployment.
    protected_paths=() if _login_path is None else (_login_path,),
)
