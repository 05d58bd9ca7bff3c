"""Two views: who you are, and a page only movie editors may see."""

from django.http import HttpRequest, JsonResponse

# shibwsgi's decorators, not Django's: those would send a signed-in reader (or an inactive
# account) to LOGIN_URL, which the front end answers by logging them straight back in,
# and round again. These answer 403 instead.
from shibwsgi.django import group_required, login_required


@login_required
def home(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse(
        {
            "username": user.get_username(),
            "email": user.email,
            "first_name": user.first_name,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }
    )


@group_required("movie-editors")
def editors_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"editor": request.user.get_username()})
