"""A small Flask site using the ``SSO`` extension, as a user writes it (``flask --app tests.flask_site``).

Configured from ``SHIBWSGI_*`` environment variables; ``DEV_FRONT_END=1`` puts the
development front end in front, so ``flask run`` can sign people in on a laptop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, render_template_string

from shibwsgi.authz import HasAttribute
from shibwsgi.flask import SSO, get_identity, login_required, requires
from shibwsgi.testing import DevFrontEnd

PAGE = """\
{% if current_identity %}hello {{ current_identity.user }} <a href="{{ logout_url(next='/') }}">sign out</a>
{% else %}<a href="{{ login_url() }}">sign in</a>{% endif %}
"""

ATTRIBUTES = "name=displayName groups=isMemberOf:multi"


def create_app(config: Mapping[str, Any] | None = None, **options: Any) -> Flask:
    """The site; ``config`` goes to ``app.config``, ``options`` to :class:`SSO`."""
    app = Flask(__name__)
    app.config["SHIBWSGI_ATTRIBUTES"] = ATTRIBUTES
    app.config.update(config or {})
    SSO(app, **options)

    @app.get("/")
    def home() -> str:
        return render_template_string(PAGE)

    @app.get("/me")
    @login_required
    def me() -> dict[str, Any]:
        identity = get_identity()
        assert identity is not None  # login_required let us in
        return {"user": identity.user, "groups": list(identity.attributes.get("groups", ()))}

    @app.get("/editors")
    @requires(HasAttribute("groups", "movie-editors"))
    def editors() -> str:
        return "editors only"

    return app


def _from_environment() -> Flask:
    app = create_app({key: value for key, value in os.environ.items() if key.startswith("SHIBWSGI_")})
    if os.environ.get("DEV_FRONT_END") == "1":
        profile = os.environ.get("SHIBWSGI_PROFILE", "shibboleth")
        app.wsgi_app = DevFrontEnd(app.wsgi_app, profile=profile)  # type: ignore[method-assign]
    return app


app = _from_environment()
