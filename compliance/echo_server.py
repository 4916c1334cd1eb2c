"""Autobahn testee (server role): echo every message, on any path.

Built on ekws's own server plumbing (:class:`ekws.wire.server.SharedServer`, its
upgrade and reader loop) and connection layer; only the delivery differs: a
message goes back to its sender instead of to a stream.

    python compliance/echo_server.py --port 9002
"""

from __future__ import annotations

import argparse
import logging
import threading

from ekws.config import ServerConfig, SourceProps
from ekws.errors import EkwsError
from ekws.message import Peer
from ekws.wire.frames import Payload
from ekws.wire.protocol import Link
from ekws.wire.server import ServerRoute, SharedServer

logger = logging.getLogger("echo_server")
MAX_MESSAGE = 64 * 1024 * 1024  # Autobahn 9.x sends messages up to 16 MiB


class _LogSink:
    """The sink a route reports to; the echo testee only logs."""

    def publish(self, peer: Peer, payloads: list[bytes | str], timestamp: int) -> None:
        pass

    def report_status(self, state: str, error: str | None = None, url: str | None = None,
                      attempt: int = 0) -> None:
        logger.info("%s %s", state, url)

    def report_error(self, exc: EkwsError) -> None:
        logger.info("%s", exc)

    def connection_opened(self, peer: Peer) -> None:
        pass

    def connection_closed(self, peer: Peer, code: int | None = None, error: str | None = None) -> None:
        pass


class EchoRoute(ServerRoute):
    def deliver(self, link: Link, peer: Peer, messages: list[Payload]) -> None:
        for message in messages:
            link.send(message)


class AnyPath(SharedServer):
    def route(self, path: str) -> ServerRoute | None:
        return next(iter(self._routes.values()), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    server = AnyPath(ServerConfig(http_server_ip=args.host, http_server_port=args.port))
    props = SourceProps(max_message_size=MAX_MESSAGE, ping_interval=0)
    counter = iter(range(1, 1 << 62))
    route = EchoRoute(server, _LogSink(), "echo", "/", props, lambda: next(counter))
    route.start()
    print(f"echo server on {server.url('/')}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        route.stop()


if __name__ == "__main__":
    main()
