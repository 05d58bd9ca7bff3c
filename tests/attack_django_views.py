"""Backends and views for tests/test_attack_django.py (imported after Django's setup)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import RemoteUserMiddleware
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django_site import password_login, whoami
from django_views import editors_only, members_only, remote_user_login

from shibwsgi.django import (
    IdentityBackend,
    group_required,
    identity_of,
    login_required,
    user_passes_test_or_403,
)


def remember(request: HttpRequest) -> JsonResponse:
    """Keeps ``?value=`` in the session: what a shopping cart or a draft would."""
    if "value" in request.GET:
        request.session["kept"] = request.GET["value"]
    return JsonResponse({"kept": request.session.get("kept"), "user": request.user.get_username()})


@user_passes_test_or_403(lambda user: user.get_username().startswith("admin"), login_url="/elsewhere")
def admins_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"admin": request.user.get_username()})


@login_required
async def async_members(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"member": (await request.auser()).get_username()})


@group_required("app-editors")
async def async_editors(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"editor": (await request.auser()).get_username()})


class ThreeArgumentBackend(IdentityBackend):
    """``configure_user(request, user)``: Django 3.2 to 4.2's RemoteUserBackend signature."""

    def configure_user(self, request: HttpRequest | None, user: Any) -> Any:  # type: ignore[override]
        user.last_name = "configured"
        user.save()
        return user


class KeywordsBackend(IdentityBackend):
    """``configure_user(request, user, **kwargs)`` passing everything on."""

    def configure_user(self, request: HttpRequest | None, user: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        user = super().configure_user(request, user, **kwargs)
        identity = identity_of(request) if request is not None else None
        user.last_name = f"kw {identity.user if identity else None}"
        user.save()
        return user


class PositionalIdentityBackend(IdentityBackend):
    """The adapter's first API: ``configure_user(request, user, identity, created)``, super() positional."""

    def configure_user(
        self, request: HttpRequest | None, user: Any, identity: Any, created: bool = False
    ) -> Any:
        user = super().configure_user(request, user, identity, created)
        user.last_name = "positional"
        user.save()
        return user


class StaffFromGroupBackend(IdentityBackend):
    """The README's recipe: ``is_staff`` from a group, in Django's configure_user signature."""

    def configure_user(self, request: HttpRequest | None, user: Any, created: bool = True) -> Any:  # type: ignore[override]
        user.is_staff = user.groups.filter(name="app-staff").exists()
        user.save()
        return user


class HeaderRemoteUserMiddleware(RemoteUserMiddleware):
    """Django's middleware reading a client header, as many "SSO header" guides configure it."""

    header = "HTTP_REMOTE_USER"


urlpatterns = [
    path("", whoami),
    path("password-login", password_login),
    path("remote-user", remote_user_login),
    path("editors", editors_only),
    path("members", members_only),
    path("remember", remember),
    path("admins", admins_only),
    path("async-members", async_members),
    path("async-editors", async_editors),
]
