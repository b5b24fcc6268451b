"""asgiref-fast: asgiref's sync/async bridges, without the thread hops' cost.

``asgiref_fast`` mirrors asgiref 3.13.0 module for module. Call
:func:`install` once, early, to make ``import asgiref...`` resolve to it.
"""

__version__ = "0.1.0"

# The asgiref release whose behaviour and API we provide.
ASGIREF_VERSION = "3.13.0"

__all__ = ["ASGIREF_VERSION", "COMPILED", "__version__", "install"]

# COMPILED and install() load the twins and the import machinery on first
# use, not here: the start-up hook (ASGIREF_FAST=1) imports this package in
# every interpreter, most of which never import asgiref.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._impl import COMPILED
    from ._install import install
else:
    def __getattr__(name):
        if name == "COMPILED":
            from ._impl import COMPILED as value
        elif name == "install":
            from ._install import install as value
        else:
            raise AttributeError(f"module 'asgiref_fast' has no attribute {name!r}")
        globals()[name] = value
        return value
