"""Settings of the shibwsgi Django example: the parts that matter are AUTHENTICATION_BACKENDS,
MIDDLEWARE and the SHIBWSGI_* adapter settings at the end."""

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret-" + "0" * 32)
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1 localhost").split()

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "shibwsgi.django_checks",  # shibwsgi's checks in manage.py check
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After AuthenticationMiddleware: request.user follows the front end's identity.
    "shibwsgi.django.IdentityMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "shibwsgi.django.IdentityBackend",
    # Password logins (createsuperuser's account, the admin) keep working next to the front end's.
    "django.contrib.auth.backends.ModelBackend",
]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(HERE / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# Where login_required and group_required send anonymous users: shibwsgi's login path.
LOGIN_URL = "/login"

# shibwsgi's Django adapter (Django settings, not environment variables).
# Django user field -> identity attribute (the app names given to SSOMiddleware in wsgi.py).
SHIBWSGI_USER_FIELDS = {"email": "email", "first_name": "given_name", "last_name": "surname"}
# Identity values starting with the prefix become Django groups; membership in groups
# with the prefix follows the identity, groups an admin assigns without it are kept.
SHIBWSGI_GROUPS_ATTRIBUTE = "groups"
SHIBWSGI_GROUPS_PREFIX = "movie-"
