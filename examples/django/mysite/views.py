"""Two views: who you are, and a page only movie editors may see."""

from django.contrib.auth.decorators import login_required, user_passes_test
from django.http import HttpRequest, JsonResponse


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


def is_editor(user: object) -> bool:
    return bool(
        getattr(user, "is_authenticated", False) and user.groups.filter(name="movie-editors").exists()
    )


@user_passes_test(is_editor)
def editors_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"editor": request.user.get_username()})
