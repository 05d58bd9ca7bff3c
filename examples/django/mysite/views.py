"""Two views: who you are, and a page only movie editors may see."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse

from shibwsgi.django import group_required


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


# Not user_passes_test: it would send a signed-in reader to LOGIN_URL, which the front
# end answers by logging them straight back in, and round again. They get 403 instead.
@group_required("movie-editors")
def editors_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"editor": request.user.get_username()})
