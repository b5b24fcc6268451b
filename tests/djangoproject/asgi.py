"""The ASGI application: Django for HTTP, Channels for WebSockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoproject.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

http = get_asgi_application()  # sets Django up before the consumers import models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from .notes.consumers import AsyncRoom, SyncRoom  # noqa: E402

application = ProtocolTypeRouter({
    "http": http,
    "websocket": AuthMiddlewareStack(URLRouter([
        path("ws/sync/", SyncRoom.as_asgi()),
        path("ws/async/", AsyncRoom.as_asgi()),
    ])),
})
