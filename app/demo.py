"""The demo app behind the development front end: ``make demo``, no identity provider needed.

``module = app.demo:application`` (see ``app/demo-uwsgi.ini``). The same
``SHIBWSGI_*`` variables configure :mod:`app.wsgi` and the front end's profile,
channel and protected login path. A header front end (``SHIBWSGI_PROFILE=oauth2-proxy``)
makes the app read headers too, trusting loopback only: this process's own front
end is the proxy. ``DEVFRONTEND_SECRET_KEY`` signs the front end's cookie; the ini
sets a random one per run, shared by the workers.
Development only: anyone who can reach it can sign in as anyone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from app import make_application
from shibwsgi.settings import optional_path
from shibwsgi.testing.frontend import DevFrontEnd, default_channel

__all__ = ["LOOPBACK", "application", "demo_application"]

#: The only proxies a header-channel demo trusts: the development front end runs in-process.
LOOPBACK = "127.0.0.0/8, ::1"


def demo_application(environ: Mapping[str, str]) -> DevFrontEnd:
    """The app and the development front end, configured alike from ``environ``."""
    settings = dict(environ)
    profile = settings.get("SHIBWSGI_PROFILE", "shibboleth")
    channel = settings.get("SHIBWSGI_CHANNEL") or default_channel(profile)
    if channel == "headers":
        settings.setdefault("SHIBWSGI_CHANNEL", channel)
        settings.setdefault("SHIBWSGI_TRUSTED_PROXIES", LOOPBACK)
    login_path = optional_path(settings.get("SHIBWSGI_LOGIN_PATH", "/login"))
    return DevFrontEnd(
        make_application(settings),
        profile=profile,
        channel=channel,
        secret_key=settings.get("DEVFRONTEND_SECRET_KEY") or None,
        # As Apache protects the login path (Require shib-session) in the real deployment.
        protected_paths=() if login_path is None else (login_path,),
    )


application = demo_application(os.environ)
