"""The ekws service: ``ekws run``, its REST API, sqlite store and systemd glue.

A layer on the SDK: everything here uses only ``ekws``'s public API
(:class:`ekws.Runtime`, :class:`ekws.Message`, the errors and the config
loaders), and ``import ekws`` never imports this package. A device script
that only needs a stream never loads REST, SQL or sqlite.

Modules, one concept each: :mod:`.app` (the service object: runtime, store,
REST server, signals), :mod:`.store` (sqlite), :mod:`.check` (connectivity
check), :mod:`.notify` (systemd), :mod:`.output` (records as JSON lines on
stdout), :mod:`.metrics` (Prometheus text) and :mod:`.http` (the REST API,
the status page and its live feed). The rule engine is :mod:`ekws.rules`,
the CLI :mod:`ekws.cli`, the actions :mod:`ekws.actions`.
"""

from __future__ import annotations
