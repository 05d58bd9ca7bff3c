"""The demo app behind the development front end: ``make demo``, no identity provider needed.

``module = app.demo:application`` (see ``app/demo-uwsgi.ini``). The same
``SHIBWSGI_*`` variables configure :mod:`app.wsgi` and the front end's profile,
channel and protected login path. A header front end (``SHIBWSGI_PROFILE=oauth2-proxy``)
makes the app read headers too, trusting loopback only: this process's own front
end is the proxy. A signed profile (``SHIBWSGI_PROFILE=pomerium``) gets a front end
signing with a development key, and an app verifying with that key's JWKS (its
issuer and audience too) unless ``SHIBWSGI_JWKS`` / ``SHIBWSGI_JWKS_URL`` say
otherwise; the ``jwt`` profile's assertion header is :data:`JWT_HEADER`.
``DEVFRONTEND_KEY_DIR`` keeps that key in a file per algorithm, shared by the
workers (the ini: ``instance/``); without it each process makes its own.
``DEVFRONTEND_SECRET_KEY`` signs the front end's cookie; the ini sets a random one
per run, shared by the workers.
Development only: anyone who can reach it can sign in as anyone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from app import make_application
from shibwsgi.profiles import Profile, get_profile
from shibwsgi.settings import optional_path
from shibwsgi.testing.frontend import DevFrontEnd, default_channel

if TYPE_CHECKING:
    from shibwsgi.testing.signed import TestSigner

__all__ = ["JWT_HEADER", "LOOPBACK", "application", "demo_application"]

#: The only proxies a header-channel demo trusts: the development front end runs in-process.
LOOPBACK = "127.0.0.0/8, ::1"
#: The assertion header of the ``jwt`` profile's front end (it has none of its own).
JWT_HEADER = "X-Jwt-Assertion"


def demo_application(environ: Mapping[str, str]) -> DevFrontEnd:
    """The app and the development front end, configured alike from ``environ``."""
    settings = dict(environ)
    profile = settings.get("SHIBWSGI_PROFILE", "shibboleth")
    channel = settings.get("SHIBWSGI_CHANNEL") or default_channel(profile)
    if channel == "headers":
        settings.setdefault("SHIBWSGI_CHANNEL", channel)
        settings.setdefault("SHIBWSGI_TRUSTED_PROXIES", LOOPBACK)
    login_path = optional_path(settings.get("SHIBWSGI_LOGIN_PATH", "/login"))
    spec = get_profile(profile)
    signer = _signing(spec, settings) if spec.signed else None
    if signer is not None:
        spec = replace(spec, assertion_header=settings["SHIBWSGI_ASSERTION_HEADER"])
    return DevFrontEnd(
        make_application(settings),
        profile=spec,
        channel=channel,
        secret_key=settings.get("DEVFRONTEND_SECRET_KEY") or None,
        # As Apache protects the login path (Require shib-session) in the real deployment.
        protected_paths=() if login_path is None else (login_path,),
        signer=signer,
    )


def _signing(profile: Profile, settings: MutableMapping[str, str]) -> TestSigner:
    """The development key for a signed profile; the app's settings default to verifying with it."""
    from shibwsgi.testing.signed import TestSigner  # the jwt extra, for signed profiles only

    folder = settings.get("DEVFRONTEND_KEY_DIR")
    signer = TestSigner.for_profile(profile)
    if folder:
        path = Path(folder) / f"devfrontend-{signer.algorithm}.json"
        try:
            signer = TestSigner.load(path)
        except FileNotFoundError:
            try:
                signer.save(path, replace=False)
            except FileExistsError:  # another worker was first: use its key
                signer = TestSigner.load(path)
    settings.setdefault("SHIBWSGI_ASSERTION_HEADER", profile.assertion_header or JWT_HEADER)
    if "SHIBWSGI_JWKS_URL" not in settings:
        settings.setdefault("SHIBWSGI_JWKS", json.dumps(signer.jwks))
    settings.setdefault("SHIBWSGI_ISSUER", signer.issuer)
    settings.setdefault("SHIBWSGI_AUDIENCE", signer.audience)
    return signer


application = demo_application(os.environ)
