"""The ekws service: ``ekws run``, its REST API, sqlite store and systemd glue.

A layer on the SDK: everything here uses only ``ekws``'s public API
(:class:`ekws.Runtime`, :class:`ekws.Message`, the errors and the config
loaders), and ``import ekws`` never imports this package. A device script
that only needs a stream never loads REST, SQL or sqlite.

Modules, one concept each: :mod:`.app` (the service object: runtime, store,
REST server, signals), :mod:`.rest` (the WSGI app that routes are added to),
:mod:`.api` (stream, conf key and check routes), :mod:`.store` (sqlite),
:mod:`.check` (connectivity check), :mod:`.notify` (systemd), :mod:`.output`
(records as JSON lines on stdout), :mod:`.commands` (the kuiper-style CLI
client); rules: :mod:`.sql`
(the SQL subset), :mod:`.ruledef`, :mod:`.rule`, :mod:`.rules` (the manager) and
:mod:`.metrics` (Prometheus text). Actions live beside it in :mod:`ekws.actions`.
"""

from __future__ import annotations
