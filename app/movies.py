"""The JSON API: ``/api/movies`` and ``/api/me``.

Reading needs a login; creating, changing and deleting need the editor group
in the ``groups`` attribute (``MOVIES_EDITOR_GROUP``) or the ``editor`` role
(the app's own ``roles`` table, see :mod:`app.roles`)::

    GET    /api/movies           every movie (also GET /api/movies/all)
    GET    /api/movies/<id>      one movie (also GET /api/movies?id=<id>)
    POST   /api/movies           add a movie: 201 with the movie and a Location header
    PUT    /api/movies/<id>      change some fields of a movie: 200 with the movie
    DELETE /api/movies/<id>      delete a movie: 204
    GET    /api/me               who you are: the Identity as JSON, less its secrets (below)

A movie::

    {"id": 3, "title": "Titanic", "director": "James Cameron", "main_actor": "Leonardo DiCaprio",
     "published": 1997, "created_by": "alice@example.org", "created_at": "2024-05-01T12:30:00.000Z",
     "updated_by": "bob@example.org", "updated_at": "2024-05-02T08:00:00.000Z"}

POST and PUT take a JSON object (``Content-Type: application/json``) with:

- ``title``: a non-blank string; required on POST.
- ``director``, ``main_actor``: strings, or ``null`` for unknown.
- ``published``: the year, 1870 to 2100, as a number (``2001``) or a string of
  four digits (``"2001"``); always stored and returned as a number. ``null`` for
  unknown.
- Strings hold at most :data:`MAX_LENGTH` characters.
- Nothing else: ``id``, the ``created_*``/``updated_*`` audit fields (set by the
  server from the logged-in user and the UTC clock) and unknown keys are refused.

PUT is a partial update: the fields in the body change, the others keep their
values (send ``null`` to clear an optional one); an empty object is refused.
The ``id`` never changes.

``/api/me`` is read by page JavaScript, which must never hold what proves a login:
it leaves out the front end's session id (``Shib-Session-ID`` is the SP's session
key, the value of its HttpOnly cookie), every attribute whose name says it holds
a credential (a token, a JWT, a secret, a key, a password, a session, a cookie, an
assertion, an Authorization header) and every attribute with a value shaped like one
(a JWT, ``Bearer ...``) or holding the session id, whatever its name: ALB's
``x-amzn-oidc-data`` is a JWT.

Every error is JSON ``{"error": "...", "status": N}``, the middleware's shape:
400 invalid body, 401 not logged in, 403 not an editor, 404 no such movie, 405
wrong method, 413 body too large, 415 body not JSON. ``OPTIONS`` answers 204
with ``Allow``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import BadRequest, NotFound, Unauthorized, UnsupportedMediaType

from shibwsgi import Identity
from shibwsgi.authz import AnyOf, HasAttribute, HasRole, Requirement
from shibwsgi.flask import get_identity, login_required, requires

from .db import FIELDS, Movie, delete_movie, get_db, get_movie, insert_movie, list_movies, update_movie

__all__ = [
    "EDITOR_ROLE",
    "MAX_LENGTH",
    "YEARS",
    "InvalidMovie",
    "create_blueprint",
    "json_body",
    "public_identity",
    "validate",
    "writers",
]

#: The app's own role (``roles`` table) that may write, as the editor group may.
EDITOR_ROLE = "editor"
#: Longest string accepted in any field.
MAX_LENGTH = 500
#: Years accepted for ``published``.
YEARS = range(1870, 2101)

_READ_ONLY = frozenset({"id", "created_by", "created_at", "updated_by", "updated_at"})
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_ID = re.compile(r"[0-9]{1,19}")
_MOVIE = "/movies/<int:movie_id>"


class InvalidMovie(BadRequest):
    """The request body is not an acceptable movie (400)."""


def create_blueprint(editor_group: str) -> Blueprint:
    """The API's routes, with writing reserved to ``editor_group`` and the editor role."""
    api = Blueprint("movies", __name__, url_prefix="/api")
    editor = requires(writers(editor_group))

    @api.get("/movies")
    @login_required
    def movies() -> Response:
        # The query form predates /api/movies/<id>; old clients still use it.
        if "id" in request.args:
            return _one(_query_id())
        return jsonify(list_movies(get_db()))

    @api.get("/movies/all")
    @login_required
    def all_movies() -> Response:
        return jsonify(list_movies(get_db()))

    @api.get(_MOVIE)
    @login_required
    def movie(movie_id: int) -> Response:
        return _one(movie_id)

    @api.post("/movies")
    @editor
    def create() -> tuple[Response, int, dict[str, str]]:
        fields = validate(json_body(), partial=False)
        created = insert_movie(get_db(), fields, _user())
        return jsonify(created), 201, {"Location": url_for(".movie", movie_id=created["id"])}

    @api.put(_MOVIE)
    @editor
    def update(movie_id: int) -> Response:
        changes = validate(json_body(), partial=True)
        return _found(update_movie(get_db(), movie_id, changes, _user()), movie_id)

    @api.delete(_MOVIE)
    @editor
    def delete(movie_id: int) -> Response:
        if not delete_movie(get_db(), movie_id):
            raise NotFound(f"no movie with id {movie_id}")
        response = current_app.response_class(status=204)
        del response.headers["Content-Type"]  # 204 has no body to describe
        return response

    @api.get("/me")
    @login_required
    def me() -> Response:
        identity = get_identity()
        if identity is None:
            raise Unauthorized("authentication required")
        return jsonify(public_identity(identity))

    return api


#: Attribute names that say they hold a credential; "sid", "otp" and "pin" as words (the
#: OIDC session id claim, one-time codes), "key" at a word's end (api_key, apikey, ssh-key).
_SECRET_NAME = re.compile(
    r"token|secret|passw|pwd|session|cookie|assertion|credential|jwt|bearer|authoriz|saml.?response"
    r"|key(?![a-z])|(?<![a-z])(?:sid|otp|pin)(?![a-z])",
    re.IGNORECASE,
)
#: Values that are credentials whatever their attribute's name: a JWT (a JSON header in
#: base64url, then a dot: JWS and JWE) or an HTTP bearer credential.
_SECRET_VALUE = re.compile(r"\s*(?:eyJ[A-Za-z0-9_-]*\.|bearer\s)", re.IGNORECASE)


def public_identity(identity: Identity) -> dict[str, Any]:
    """``identity`` as ``/api/me`` shows it: no session id, no credential by name or by shape."""
    shown = identity.to_dict()
    del shown["session_id"]
    shown["attributes"] = {
        name: values for name, values in shown["attributes"].items() if not _is_secret(name, values, identity)
    }
    return shown


def _is_secret(name: str, values: list[str], identity: Identity) -> bool:
    # The session id under any attribute name (Shib-Session-ID mapped as "handle") is still the key.
    session = identity.session_id or ""
    return (
        _SECRET_NAME.search(name) is not None
        or any(_SECRET_VALUE.match(value) for value in values)
        or (bool(session) and any(session in value for value in values))
    )


def writers(editor_group: str) -> Requirement:
    """Who may create, change and delete movies: ``editor_group``, or the editor role."""
    return AnyOf(HasAttribute("groups", editor_group), HasRole(EDITOR_ROLE))


def validate(data: object, *, partial: bool) -> dict[str, Any]:
    """Check a decoded request body; return the fields to store.

    ``partial`` (PUT): every field is optional, but at least one must be given.
    Raises :class:`InvalidMovie` with a message for the client.
    """
    if not isinstance(data, dict):
        raise InvalidMovie(f"the body must be a JSON object, not {_json_type(data)}")
    read_only = sorted(_READ_ONLY.intersection(data))
    if read_only:
        raise InvalidMovie(f"read-only field(s) cannot be set: {_names(read_only)}")
    unknown = sorted(key for key in data if key not in FIELDS)
    if unknown:
        raise InvalidMovie(f"unknown field(s): {_names(unknown)}; allowed: {', '.join(FIELDS)}")
    if not partial and "title" not in data:
        raise InvalidMovie("'title' is required")
    if partial and not data:
        raise InvalidMovie(f"nothing to change: give at least one of {', '.join(FIELDS)}")
    fields: dict[str, Any] = {}
    for name, value in data.items():
        if name == "published":
            fields[name] = None if value is None else _year(value)
        elif name == "title":
            fields[name] = _text(name, value, blank=False)
        else:
            fields[name] = None if value is None else _text(name, value, blank=True)
    return fields


def _text(name: str, value: object, *, blank: bool) -> str:
    if not isinstance(value, str):
        raise InvalidMovie(f"{name!r} must be a string, not {_json_type(value)}")
    if not blank and not value.strip():
        raise InvalidMovie(f"{name!r} must not be empty")
    if len(value) > MAX_LENGTH:
        raise InvalidMovie(f"{name!r} is longer than {MAX_LENGTH} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can spell lone surrogates ("\ud800"); SQLite could not store them.
        raise InvalidMovie(f"{name!r} is not valid Unicode text") from None
    return value


def _year(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        year = value
    elif isinstance(value, str) and _FOUR_DIGITS.fullmatch(value):
        year = int(value)
    else:
        raise InvalidMovie("'published' must be a year: a whole number or a string of four digits")
    if year not in YEARS:
        raise InvalidMovie(f"'published' must be a year from {YEARS.start} to {YEARS.stop - 1}")
    return year


def json_body() -> object:
    """The request's JSON body: 415 unless it is JSON, 400 unless it parses."""
    if not request.is_json:
        raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)")
    try:
        return json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        # ValueError covers bad syntax and bad encoding; RecursionError, absurd nesting.
        raise BadRequest("the body is not valid JSON") from None


def _query_id() -> int:
    value = request.args.get("id", "")
    if not _ID.fullmatch(value):
        raise BadRequest("'id' must be a movie id (a whole number)")
    return int(value)


def _one(movie_id: int) -> Response:
    return _found(get_movie(get_db(), movie_id), movie_id)


def _found(movie: Movie | None, movie_id: int) -> Response:
    if movie is None:
        raise NotFound(f"no movie with id {movie_id}")
    return jsonify(movie)


def _user() -> str:
    # The decorators let only logged-in users through; this is the type narrowing.
    identity = get_identity()
    if identity is None:
        raise Unauthorized("authentication required")
    return identity.user


def _names(keys: list[str]) -> str:
    # Keys come from the client: quote them and keep them short.
    return ", ".join(repr(key if len(key) <= 40 else key[:40] + "...") for key in keys)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
