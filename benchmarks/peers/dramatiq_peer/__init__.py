"""Dramatiq (Redis broker) peer: ``tasks.py`` for the worker, ``adapter.py`` for the harness."""
