"""A Django app whose user model has no groups, for tests/attack_django_plainuser.py."""
