"""Two async views: who you are, and a page only movie editors may see."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from shibwsgi.django import identity_of


async def home(request: HttpRequest) -> JsonResponse:
    identity = identity_of(request)  # under ASGI too: the middleware's verified identity
    if identity is None:
        return JsonResponse({"error": "log in first"}, status=401)
    return JsonResponse({"user": identity.user, "email": identity.get("email")})


async def editors(request: HttpRequest) -> JsonResponse:
    identity = identity_of(request)
    if identity is None:
        return JsonResponse({"error": "log in first"}, status=401)
    if "movie-editors" not in identity.attributes.get("groups", ()):
        return JsonResponse({"error": "only movie editors"}, status=403)
    return JsonResponse({"editor": identity.user})


urlpatterns = [path("", home), path("editors", editors)]
