"""The HTML pages: who you are, log in / log out, the movies, and forms for editors.

Editors add, change and delete movies with plain HTML forms (no JavaScript);
every form carries a CSRF token (:mod:`app.csrf`). Readers see the list and why
they cannot change it.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound, Unauthorized
from werkzeug.wrappers import Response

from shibwsgi import Identity
from shibwsgi.authz import Requirement
from shibwsgi.flask import get_identity, requires

from . import csrf
from .db import FIELDS, delete_movie, get_db, get_movie, insert_movie, list_movies, update_movie
from .movies import InvalidMovie, validate, writers

__all__ = ["NOTICES", "blueprint"]

blueprint = Blueprint("pages", __name__)

#: Messages shown after a change, by the ``done`` query parameter (never echoed text).
NOTICES = {"added": "Movie added.", "updated": "Movie updated.", "deleted": "Movie deleted."}


def _editor() -> Requirement:
    return writers(current_app.config["EDITOR_GROUP"])


def editor_required(view: Any) -> Any:
    """Editors only (checked at request time: the group is the app's configuration)."""

    @functools.wraps(view)
    def check(*args: Any, **kwargs: Any) -> Any:
        return requires(_editor())(view)(*args, **kwargs)

    return check


@blueprint.get("/")
def home() -> str:
    """Public: anonymous visitors get a sign-in prompt instead of the movie list."""
    identity = get_identity()
    return _render(
        "home.html",
        identity,
        movies=list_movies(get_db()) if identity else None,
        notice=NOTICES.get(request.args.get("done", "")),
    )


@blueprint.post("/movies")
@editor_required
@csrf.protected
def add() -> Response | tuple[str, int]:
    try:
        insert_movie(get_db(), validate(_form_fields(), partial=False), _user())
    except InvalidMovie as exc:
        return _render_home_with_error(exc), 400
    return redirect(url_for(".home", done="added"), 303)


@blueprint.get("/movies/<int:movie_id>/edit")
@editor_required
def edit(movie_id: int) -> str:
    return _render("edit.html", get_identity(), movie=_movie(movie_id), error=None)


@blueprint.post("/movies/<int:movie_id>/edit")
@editor_required
@csrf.protected
def update(movie_id: int) -> Response | tuple[str, int]:
    movie = _movie(movie_id)
    try:
        update_movie(get_db(), movie_id, validate(_form_fields(), partial=False), _user())
    except InvalidMovie as exc:
        submitted = {**movie, **request.form.to_dict()}
        return _render("edit.html", get_identity(), movie=submitted, error=exc.description), 400
    return redirect(url_for(".home", done="updated"), 303)


@blueprint.post("/movies/<int:movie_id>/delete")
@editor_required
@csrf.protected
def delete(movie_id: int) -> Response:
    if not delete_movie(get_db(), movie_id):
        raise NotFound(f"no movie with id {movie_id}")
    return redirect(url_for(".home", done="deleted"), 303)


def _render(template: str, identity: Identity | None, **context: Any) -> str:
    return render_template(
        template,
        identity=identity,
        groups=identity.attributes.get("groups", ()) if identity else (),
        can_edit=_editor().allows(identity),
        editor_group=current_app.config["EDITOR_GROUP"],
        csrf_token=csrf.csrf_token(identity) if identity else "",
        **context,
    )


def _render_home_with_error(exc: InvalidMovie) -> str:
    return _render(
        "home.html",
        get_identity(),
        movies=list_movies(get_db()),
        notice=None,
        error=exc.description,
        submitted=request.form.to_dict(),
    )


def _form_fields() -> dict[str, Any]:
    """The form as the API's JSON would say it: blank optional fields are unknown (``None``)."""
    form = request.form
    fields: dict[str, Any] = {name: form.get(name, "").strip() or None for name in FIELDS}
    fields["title"] = form.get("title", "")
    return fields


def _movie(movie_id: int) -> dict[str, Any]:
    movie = get_movie(get_db(), movie_id)
    if movie is None:
        raise NotFound(f"no movie with id {movie_id}")
    return movie


def _user() -> str:
    # The decorators let only editors through; this is the type narrowing.
    identity = get_identity()
    if identity is None:
        raise Unauthorized("authentication required")
    return identity.user
