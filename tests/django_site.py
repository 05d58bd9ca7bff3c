"""A minimal Django project for tests/test_django.py: settings and the views that need no adapter.

Importable before Django is configured; :mod:`django_views` (the URLconf, backends) is not.
"""

from __future__ import annotations

from pathlib import Path

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "shibwsgi.django.IdentityMiddleware",
]


def configure(database: Path) -> None:
    """Configure Django once per process, with an SQLite database at ``database``."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only-" + "x" * 40,
        ALLOWED_HOSTS=["localhost", "127.0.0.1"],
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        MIDDLEWARE=MIDDLEWARE,
        AUTHENTICATION_BACKENDS=[
            "shibwsgi.django.IdentityBackend",
            "django.contrib.auth.backends.ModelBackend",
        ],
        ROOT_URLCONF="django_views",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SHIBWSGI_USER_FIELDS={"email": "email", "first_name": "given_name"},
        SHIBWSGI_GROUPS_ATTRIBUTE="groups",
        SHIBWSGI_GROUPS_PREFIX="app-",
        LOGIN_URL="/login",
        LOGGING_CONFIG=None,
    )
    django.setup()


def whoami(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse(
        {
            "authenticated": user.is_authenticated,
            "username": user.get_username(),
            "last_name": getattr(user, "last_name", ""),
            "last_login": user.last_login.isoformat() if getattr(user, "last_login", None) else None,
            "backend": request.session.get("_auth_user_backend"),
            "email": getattr(user, "email", ""),
            "first_name": getattr(user, "first_name", ""),
            "groups": sorted(user.groups.values_list("name", flat=True)) if user.is_authenticated else [],
            "session_key": request.session.session_key,
        }
    )


def password_login(request: HttpRequest) -> JsonResponse:
    """Stands in for a login form: logs ``?user=`` in with Django's own backend."""
    from django.contrib.auth import get_user_model, login

    user, _ = get_user_model().objects.get_or_create(username=request.GET["user"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return whoami(request)
