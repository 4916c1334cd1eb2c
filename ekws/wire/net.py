"""Sockets and WSGI types both servers share (the shared server, the REST API), with no third-party import.

ekws binds its listening sockets itself: Werkzeug's ``make_server`` would
call ``sys.exit(1)`` on a failed bind, and a busy port must be an ekws error.
"""

from __future__ import annotations

import socket
from typing import Any, Callable

from ..errors import BindError

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def listen_socket(host: str, port: int, *, backlog: int, what: str) -> socket.socket:
    """A socket bound and listening on ``host:port``, for ``what`` (named in the error).

    ekws binds its servers itself (the shared server, the REST API): Werkzeug
    would call ``sys.exit(1)`` on a failed bind.

    Raises:
        BindError: the address is in use, not local, or needs privileges.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}") from exc
    return sock
