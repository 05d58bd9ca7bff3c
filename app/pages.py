"""The HTML home page: who you are, log in / log out, and the movies."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from shibwsgi.flask import get_identity

from .db import get_db, list_movies
from .movies import writers

__all__ = ["blueprint"]

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
def home() -> str:
    """Public: anonymous visitors get a sign-in prompt instead of the movie list."""
    identity = get_identity()
    editor = writers(current_app.config["EDITOR_GROUP"])
    return render_template(
        "home.html",
        identity=identity,
        groups=identity.attributes.get("groups", ()) if identity else (),
        can_edit=editor.allows(identity),
        movies=list_movies(get_db()) if identity else None,
    )
