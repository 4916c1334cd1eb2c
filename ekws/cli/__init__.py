"""The ``ekws`` command: ``ekws run`` and a ``bin/kuiper``-style client of the REST API."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
