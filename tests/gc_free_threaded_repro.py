"""On a free-threaded build, an object made in one thread and dropped by
another is freed only once its owner merges the refcount: the next gc.collect()
finds it unreachable and, under DEBUG_SAVEALL, files it as garbage though it
was never in a cycle. No asyncio, no asgiref."""
import gc
import queue
import sys
import threading


class Plain:  # no cycle anywhere
    pass

made = queue.Queue()

done = threading.Event()

def maker():  # stays alive, as an executor's worker does
    for _ in range(100):
        made.put(Plain())
    done.wait()

gc.collect()
gc.garbage.clear()
gc.set_debug(gc.DEBUG_SAVEALL)
t = threading.Thread(target=maker)
t.start()
for _ in range(100):
    made.get(timeout=10)  # dropped here, in the main thread
gc.collect()
done.set()
t.join()
print(sys.version.split()[0], "GIL" if getattr(sys, "_is_gil_enabled", lambda: True)() else "no GIL",
      "garbage:", len(gc.garbage), sorted({type(o).__name__ for o in gc.garbage}))
gc.set_debug(0)
gc.garbage.clear()
