"""asgiref_fast.typing against upstream's asgiref.typing, name by name.

Our module is written from the ASGI spec; what must match upstream is the
contract: the names, every TypedDict's keys (required or not) and value
types, the aliases' structure and the Protocol's signatures. Upstream's
module is loaded from its file under a private name, so that an installed
stand-in (``asgiref_fast.install()``) cannot answer for it.
"""

import collections.abc
import importlib.util
import inspect
import sys
import types
import typing
from importlib.machinery import PathFinder
from pathlib import Path

import pytest

import asgiref_fast.typing as ours

from differential import upstream_available

pytestmark = pytest.mark.skipif(not upstream_available(), reason="upstream asgiref is not installed")

# Modules whose objects upstream's typing.py merely imports (Optional, Dict,
# sys...): not part of the contract.
_FOREIGN = {"typing", "typing_extensions", "collections.abc", "builtins", "sys", "abc"}


def load_upstream(name: str = "_upstream_asgiref_typing"):
    spec = PathFinder.find_spec("asgiref")
    path = Path(next(iter(spec.submodule_search_locations))) / "typing.py"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # get_type_hints resolves names through it
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    assert "asgiref_fast" not in str(path), path
    return module


@pytest.fixture(scope="module")
def upstream():
    module = load_upstream()
    yield module
    sys.modules.pop(module.__name__, None)


def public_names(module) -> "set[str]":
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", None) in _FOREIGN and not _is_alias(value):
            continue  # an import (Optional, Awaitable...), not a definition
        names.add(name)
    return names


def _is_alias(value) -> bool:
    return typing.get_origin(value) is not None


def shape(hint, module):
    """A structure of plain values saying what *hint* means: the module's
    own classes by name, generics as (origin, args), unions of either
    spelling (Optional[X], Union[...], X | Y) as one kind."""
    if isinstance(hint, list):  # Callable's parameter list
        return ("params", tuple(shape(item, module) for item in hint))
    if hint is None or hint is type(None):
        return ("None",)
    if isinstance(hint, type) and vars(module).get(hint.__name__) is hint:
        return ("own", hint.__name__)
    origin = typing.get_origin(hint)
    if origin is None:
        assert isinstance(hint, type) and hint.__module__ in _FOREIGN, hint
        return ("type", hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return ("union", tuple(shape(arg, module) for arg in args))
    if origin is typing.Literal:
        return ("literal", args)
    if origin is collections.abc.Callable:
        params, result = args  # Callable[[P, ...], R] or Callable[..., R]
        if params is Ellipsis:
            return ("callable", "...", shape(result, module))
        return ("callable", shape(params, module), shape(result, module))
    return ("generic", origin, tuple(shape(arg, module) for arg in args))


def typed_dict_shape(cls, module):
    hints = typing.get_type_hints(cls, include_extras=True)
    return {
        "keys": list(hints),
        "required": sorted(cls.__required_keys__),
        "optional": sorted(cls.__optional_keys__),
        "total": cls.__total__,
        "hints": {key: shape(hint, module) for key, hint in hints.items()},
    }


def protocol_shape(cls, module):
    assert getattr(cls, "_is_protocol", False), cls
    methods = {}
    for name, member in vars(cls).items():
        if not callable(member) or (name.startswith("_") and not name.endswith("__")):
            continue
        if name in ("__subclasshook__", "__init_subclass__", "__class_getitem__"):
            continue
        if member is getattr(typing.Protocol, name, None):
            continue
        signature = inspect.signature(member)
        hints = typing.get_type_hints(member)
        methods[name] = {
            "coroutine": inspect.iscoroutinefunction(member),
            "params": [(p.name, str(p.kind), p.default is p.empty) for p in signature.parameters.values()],
            "hints": {key: shape(hint, module) for key, hint in hints.items()},
        }
    return methods


def contract(module):
    """Everything a user of *module* relies on, as comparable values."""
    result = {"__all__": list(module.__all__), "names": sorted(public_names(module))}
    for name in result["names"]:
        value = getattr(module, name)
        if typing.is_typeddict(value):
            result[name] = ("TypedDict", typed_dict_shape(value, module))
        elif isinstance(value, type) and getattr(value, "_is_protocol", False):
            result[name] = ("Protocol", protocol_shape(value, module))
        else:
            result[name] = ("alias", shape(value, module))
    return result


def test_same_contract_as_upstream(upstream):
    assert upstream.__name__ != "asgiref_fast.typing"
    theirs, mine = contract(upstream), contract(ours)
    assert mine["__all__"] == theirs["__all__"]
    assert mine["names"] == theirs["names"]
    for name in theirs["names"]:
        assert mine[name] == theirs[name], name
    assert mine == theirs


def test_every_name_is_checked(upstream):
    # Nothing public slips past contract(): each name is a TypedDict, a
    # Protocol or an alias with a structure, in both modules.
    kinds = {name: value[0] for name, value in contract(upstream).items()
             if name not in ("__all__", "names")}
    assert set(kinds) >= set(upstream.__all__)
    assert "HTTPResponseDebugEvent" in kinds  # public, though not in __all__
    assert set(kinds.values()) == {"TypedDict", "Protocol", "alias"}
    assert sum(kind == "TypedDict" for kind in kinds.values()) == 26


@pytest.mark.parametrize("mutation", [
    # (description, our source line, its replacement)
    ("a field missing", '"type": Literal["http.request"], "body": bytes, "more_body": bool,',
     '"type": Literal["http.request"], "body": bytes,'),
    ("a field made optional", "    path: str\n    raw_path: bytes\n    query_string: bytes\n"
     "    root_path: str\n    headers: _HeaderPairs\n    client: _Client\n    server: _Server\n"
     "    subprotocols",
     "    path: NotRequired[str]\n    raw_path: bytes\n    query_string: bytes\n"
     "    root_path: str\n    headers: _HeaderPairs\n    client: _Client\n    server: _Server\n"
     "    subprotocols"),
    ("a field typed differently", '"code": int, "reason": str | None,\n})\nWebSocketCloseEvent',
     '"code": int, "reason": str,\n})\nWebSocketCloseEvent'),
    ("a nested type changed", "_Server = tuple[str, int | None] | None", "_Server = tuple[str, int] | None"),
    ("a union member dropped", "    LifespanStartupEvent, LifespanShutdownEvent,\n]",
     "    LifespanStartupEvent,\n]"),
    ("a literal changed", 'Literal["2.0"] | Literal["3.0"]', 'Literal["3.0"]'),
    ("a callable's parameters changed", "ASGISendCallable = Callable[[ASGISendEvent]",
     "ASGISendCallable = Callable[[ASGIReceiveEvent]"),
    ("a protocol method no longer async", "    async def __call__", "    def __call__"),
], ids=lambda mutation: mutation[0])
def test_the_comparison_sees_a_changed_contract(upstream, mutation):
    # Our module's source, mutated, must no longer compare equal.
    _, old, new = mutation
    source = Path(ours.__file__).read_text()
    assert source.count(old) == 1, old
    name = "_mutated_asgiref_fast_typing"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(compile(source.replace(old, new), ours.__file__, "exec"), module.__dict__)
        assert contract(module) != contract(upstream)
        # The unmutated source, loaded the same way, does compare equal.
        fresh = importlib.util.module_from_spec(spec)
        sys.modules[name] = fresh
        exec(compile(source, ours.__file__, "exec"), fresh.__dict__)
        assert contract(fresh) == contract(upstream)
    finally:
        sys.modules.pop(name, None)
