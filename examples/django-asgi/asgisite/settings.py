"""Settings of the Django-under-ASGI example: no database, the identity is read per request."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret-" + "0" * 32)
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1 localhost testserver").split()
# shibwsgi.django imports the auth models; these views need no database.
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "asgisite.urls"
ASGI_APPLICATION = "asgisite.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
