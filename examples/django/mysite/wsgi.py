"""WSGI entry point: Django wrapped by shibwsgi (uWSGI: ``module = mysite.wsgi:application``).

The middleware's other settings (profile, sessions...) come from SHIBWSGI_* environment
variables; the attributes the adapter reads are named here.
"""

import os

from django.core.wsgi import get_wsgi_application

from shibwsgi import Attribute, SSOMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = SSOMiddleware.from_env(
    get_wsgi_application(),
    attributes={
        "email": "mail",
        "given_name": "givenName",
        "surname": "sn",
        "groups": Attribute("isMemberOf", multi=True),
    },
)
