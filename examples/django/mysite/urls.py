from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("editors", views.editors_only),
]
