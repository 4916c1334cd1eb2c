"""Everything that touches a WebSocket: frames, the sans-I/O protocol, one dial, the shared server.

Data flows up from here: bytes from a socket become frames
(:mod:`.frames`), messages of one connection (:mod:`.protocol`), and reach
a :class:`~ekws.message.Sink` (the stream). Nothing in this package imports
the stream, the rules or the service.
"""
