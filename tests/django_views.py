"""The test project's URLconf, and views and backends that import the adapter (after Django's setup)."""

from __future__ import annotations

from typing import Any

from django.contrib import auth
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django_site import password_login, whoami

from shibwsgi import Identity
from shibwsgi.django import IdentityBackend, group_required, login_required


def remote_user_login(request: HttpRequest) -> JsonResponse:
    """What Django REST framework's RemoteUserAuthentication does: ``?as=`` stands in for its header."""
    claimed = request.GET.get("as", request.META.get("REMOTE_USER"))
    user = auth.authenticate(request=request, remote_user=claimed)
    return JsonResponse({"username": user.get_username() if user is not None else None})


@group_required("app-editors")
def editors_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"editor": request.user.get_username()})


@login_required
def members_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"member": request.user.get_username()})


class NoCreateBackend(IdentityBackend):
    """Logs in existing users only."""

    create_unknown_user = False


class AllowAllUsersBackend(IdentityBackend):
    """Lets inactive users in, as Django's AllowAllUsersRemoteUserBackend does."""

    def user_can_authenticate(self, user: Any) -> bool:
        return True


class DjangoStyleBackend(IdentityBackend):
    """Overrides written as for Django's RemoteUserBackend (its own test suite's CustomRemoteUserBackend)."""

    def clean_username(self, username: str) -> str:
        return username.split("@")[0]

    def configure_user(self, request: HttpRequest | None, user: Any, created: bool = True) -> Any:
        user = super().configure_user(request, user, created)  # Django's positional call
        user.last_name = "created" if created else "known"
        user.save()
        return user


class AdapterStyleBackend(IdentityBackend):
    """An override taking the identity, calling the base class."""

    def configure_user(
        self, request: HttpRequest | None, user: Any, identity: Identity, created: bool = False
    ) -> Any:
        user = super().configure_user(request, user, identity, created=created)
        user.last_name = f"{'created' if created else 'known'} from {identity.profile}"
        user.save()
        return user


urlpatterns = [
    path("", whoami),
    path("password-login", password_login),
    path("remote-user", remote_user_login),
    path("editors", editors_only),
    path("members", members_only),
]
