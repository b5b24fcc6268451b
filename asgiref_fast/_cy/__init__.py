"""Compiled twins of the hot paths, built from src_pyx/ (see asgiref_fast._pure)."""
