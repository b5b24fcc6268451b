"""Fork: what each module must redo in a forked child, in one registry.

A child of fork() has only the thread that forked: the parent's lanes,
spinners and loop threads are not there, and any lock one of them held stays
held. Each module registers its hooks here under a step, and the steps run in
the order of STEPS, whatever order the modules were imported in: the spinning
state first (no thread may count as spinning or busy), then the inboxes (a
closed loop's inbox must not be rung), the warm loops (closing an inherited
loop touches its inbox), the lanes, and last the executors that hand calls to
lanes. ``before`` hooks run in the reverse order.

``generation`` and ``pid`` say which process this is: a lane remembers the
generation it was made in (one made before the latest fork belongs to an
ancestor), and sync.py marks what a process's loops wait on with its pid.
"""

import os
import sys
import traceback
from collections.abc import Callable

STEPS = ("spinning", "inboxes", "loops", "lanes", "executors")

_hooks: "dict[str, dict[str, dict[str, Callable[[], object]]]]" = {
    when: {step: {} for step in STEPS} for when in ("before", "after_in_parent", "after_in_child")
}

generation = 0  # forks since import, in this process's ancestry
pid = os.getpid()


def on_fork(
    step: str,
    *,
    before: "Callable[[], object] | None" = None,
    after_in_parent: "Callable[[], object] | None" = None,
    after_in_child: "Callable[[], object] | None" = None,
) -> None:
    """Run these hooks at *step* of every fork. Both twins of a module may
    register at the same step (tests load both): each hook is kept by its
    qualified name, so a module imported again replaces its own."""
    if step not in STEPS:
        raise ValueError(f"unknown fork step {step!r}; one of {', '.join(STEPS)}")
    for when, hook in (("before", before), ("after_in_parent", after_in_parent), ("after_in_child", after_in_child)):
        if hook is not None:
            _hooks[when][step][f"{hook.__module__}.{hook.__qualname__}"] = hook


def _run(when: str, steps: "tuple[str, ...]") -> None:
    for step in steps:
        for name, hook in list(_hooks[when][step].items()):
            try:
                hook()
            except Exception:  # the next hooks run regardless, as os.register_at_fork's would
                print(f"Exception ignored in the {when} fork hook {name}:", file=sys.stderr)
                traceback.print_exc()


def _before() -> None:
    _run("before", STEPS[::-1])


def _after_in_parent() -> None:
    _run("after_in_parent", STEPS)


def _after_in_child() -> None:
    global generation, pid
    generation += 1
    pid = os.getpid()
    _run("after_in_child", STEPS)


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child)
