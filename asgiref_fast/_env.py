"""The ``ASGIREF_FAST*`` environment variables, read one way.

A switch is on for ``1``, ``true``, ``yes`` or ``on`` and off for ``0``,
``false``, ``no``, ``off``, empty or unset (any case, surrounding blanks
ignored). Any other value (a typo) is off, and said once on stderr: a
switch that silently reads ``ture`` as on, or ``false`` as on, is worse
than none. A number that does not parse, or is out of range, keeps its
default, said the same way.

Imported by the start-up hook in every interpreter where ASGIREF_FAST is
set: it imports nothing that is not already loaded at start-up.
"""

import os
import sys

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")

_told: "set[tuple[str, str]]" = set()  # (name, value) pairs already reported


def _complain(name: str, value: str, meaning: str) -> None:
    if (name, value) not in _told:
        _told.add((name, value))
        print(f"asgiref_fast: ignoring {name}={value!r}: {meaning}", file=sys.stderr)


def switch(name: str) -> bool:
    """Whether the switch *name* is on in the environment."""
    value = os.environ.get(name)
    if value is None:
        return False
    word = value.strip().lower()
    if word in TRUE:
        return True
    if word not in FALSE:
        _complain(name, value, "not 1/true/yes/on or 0/false/no/off; taken as off")
    return False


def number(name: str, default: float, *, minimum: float = 0, integer: bool = False) -> float:
    """The number in *name* (an int if *integer*), at least *minimum*; its
    *default* when unset or empty."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        parsed = int(value) if integer else float(value)
    except ValueError:
        parsed = None
    if parsed is None or not minimum <= parsed < float("inf"):  # NaN fails too
        kind = "an integer" if integer else "a number"
        _complain(name, value, f"not {kind} >= {minimum}; using {default}")
        return default
    return parsed
