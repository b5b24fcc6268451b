# The compiled twin of asgiref_fast._pure.context (src_pyx/context.pyx).
import contextvars
from collections.abc import Callable
from typing import TypeVar

from typing_extensions import disjoint_base

_T = TypeVar("_T")

OWNER: contextvars.ContextVar[int]

def adopt_context() -> None: ...
def restore_context(context: contextvars.Context) -> None: ...

@disjoint_base
class ContextCarrier:
    context: contextvars.Context
    def __init__(self, context: contextvars.Context) -> None: ...
    def __call__(self, child: Callable[[], _T]) -> _T: ...
    def restore(self) -> None: ...
