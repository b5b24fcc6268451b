"""Pure-Python twins of the hot paths.

They are the reference behaviour and the fallback where the compiled twins in
``src_pyx/`` are not available. Each module here has a compiled twin with the
same names; ``asgiref_fast._impl`` picks one set.
"""
