import os
import threading

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse, StreamingHttpResponse

from .models import Note


def notes(request):
    """Sync, on the ORM: lists the notes, or adds one."""
    if request.method == "POST":
        note = Note.objects.create(text=request.POST["text"])
        return JsonResponse({"id": note.id, "text": note.text}, status=201)
    return JsonResponse({"notes": list(Note.objects.values_list("text", flat=True))})


async def async_notes(request):
    """Async; the async ORM hops to a thread through asgiref's sync_to_async."""
    return JsonResponse({
        "count": await Note.objects.acount(),
        "notes": [note.text async for note in Note.objects.all()],
    })


def stream(request):
    """A sync generator: under ASGI, Django consumes it through sync_to_async."""
    def lines():
        for i in range(int(request.GET.get("n", "3"))):
            yield f"line {i} of {Note.objects.count()} notes\n"

    return StreamingHttpResponse(lines(), content_type="text/plain")


def bridge(request):
    """Sync code calling async code calling sync code: under ASGI the inner
    sync call must come back to this request's thread (thread-sensitive)."""
    async def inner():
        return await sync_to_async(threading.get_ident)()

    here = threading.get_ident()
    return JsonResponse({"same_thread": async_to_sync(inner)() == here,
                         "main_thread": here == threading.main_thread().ident})


def visits(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})


@login_required
def whoami(request):
    return JsonResponse({"user": request.user.username})


def facts(request):
    """Which asgiref this process runs: the tests check it."""
    import asgiref.sync
    from django.core.handlers import asgi

    from asgiref_fast._doctor import facts

    return JsonResponse({
        **facts(),
        "pid": os.getpid(),
        "asgiref_sync": asgiref.sync.__name__,
        "handler_context": asgi.ThreadSensitiveContext.__module__,
    })
