"""ASGI entry point: Django wrapped by shibwsgi's ASGI middleware, header channel.

uvicorn --no-proxy-headers --host 127.0.0.1 --port 8000 asgisite.asgi:application

nginx with oauth2-proxy on this machine in front; Django's own views read the
identity with shibwsgi.django.identity_of(request), as under WSGI.
"""

import os

from django.core.asgi import get_asgi_application

from shibwsgi.asgi import SSOMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asgisite.settings")

application = SSOMiddleware(
    get_asgi_application(),
    profile="oauth2-proxy",
    trusted_proxies=["127.0.0.1"],  # nginx, as the ASGI server sees it
    attributes={"email": "email", "groups": "groups"},
)
