from django.urls import path

from .notes import views

urlpatterns = [
    path("notes/", views.notes),
    path("async/", views.async_notes),
    path("stream/", views.stream),
    path("bridge/", views.bridge),
    path("visits/", views.visits),
    path("whoami/", views.whoami),
    path("facts/", views.facts),
]
