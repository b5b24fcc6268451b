"""asgiref-fast: asgiref's sync/async bridges, without the thread hops' cost.

``asgiref_fast`` mirrors asgiref 3.13.0 module for module. Call
:func:`install` once, early, to make ``import asgiref...`` resolve to it.
"""

from ._impl import COMPILED
from ._install import ASGIREF_VERSION, install

__version__ = "0.1.0"

__all__ = ["ASGIREF_VERSION", "COMPILED", "__version__", "install"]
