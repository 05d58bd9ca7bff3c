from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class PlainUser(AbstractBaseUser):
    """A user without PermissionsMixin: no groups."""

    username = models.CharField(max_length=150, unique=True)
    email = models.CharField(max_length=200, blank=True)
    USERNAME_FIELD = "username"
    objects = BaseUserManager()

    class Meta:
        app_label = "attack_plainusers"
