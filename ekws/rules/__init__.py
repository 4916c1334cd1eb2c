"""The rule engine: eKuiper's streaming SQL over a stream's records, usable without the service.

``ekws.rules.function("name")`` registers a Python function for rule SQL
(see :mod:`ekws.rules.functions`).
"""

from .functions import function

__all__ = ["function"]
