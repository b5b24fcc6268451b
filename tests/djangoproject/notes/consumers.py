"""Two chat rooms' worth of consumers sharing the "room" group: whatever one
receives, every member of the group gets."""

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer

from .models import Note


class SyncRoom(WebsocketConsumer):
    groups = ["room"]

    def connect(self):
        self.accept()
        self.send(text_data=f"welcome {self.scope['user']}: {Note.objects.count()} notes")

    def receive(self, text_data=None, bytes_data=None):
        async_to_sync(self.channel_layer.group_send)("room", {"type": "room.message", "text": f"sync said {text_data}"})

    def room_message(self, event):
        self.send(text_data=event["text"])


class AsyncRoom(AsyncWebsocketConsumer):
    groups = ["room"]

    async def connect(self):
        await self.accept()
        await self.send(text_data=f"welcome {self.scope['user']}: {await Note.objects.acount()} notes")

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send("room", {"type": "room.message", "text": f"async said {text_data}"})

    async def room_message(self, event):
        await self.send(text_data=event["text"])
