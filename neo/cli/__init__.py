"""Thin command-line entry points: compose configuration, call the library, print the result."""
