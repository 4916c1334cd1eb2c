"""``ekws tail STREAM``: a stream's live records as JSON lines, from a running service.

It opens the REST port's ``GET /streams/{name}/tail`` WebSocket (with the
bearer token on the upgrade) and prints each record as the JSON line ``ekws
run`` prints, ``{"data": {...}, "meta": {...}}``, on stdout. The service never
lets a tail slow the stream: when this end reads too slowly (a slow
terminal, a pipe nobody empties) it drops lines and says so in
``{"dropped": N}`` notices, printed here on stderr. Ctrl-C (or a closed
stdout, ``ekws tail s | head -n 5``) ends it with exit code 0 and a summary
line on stderr; the service ending it (stream dropped, service stopping),
or refusing it, is exit code 1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any, TextIO
from urllib.parse import quote

from ..config import SourceProps
from ..errors import ConnectError, EkwsError
from ..wire.client import close_connection, dial
from ..wire.protocol import CLOSED, Connection

OK, FAILED = 0, 1
CONNECT_TIMEOUT = 10.0
RECV_SIZE = 64 * 1024


def _refusal(exc: ConnectError) -> str:
    try:
        message = json.loads(exc.body).get("message")
    except (ValueError, AttributeError, TypeError):
        message = None
    return str(message) if message else f"HTTP {exc.status}"


def tail(host: str, port: int, token: str | None, stream: str, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Print ``stream``'s records until Ctrl-C; returns the exit code.

    The connection is client mode's one dial (:func:`ekws.wire.client.dial`)
    and its records are read by :class:`ekws.wire.protocol.Connection`, which
    validates UTF-8 and answers pings, as a stream's reader does.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    url = f"ws://{host}:{port}/streams/{quote(stream, safe='')}/tail"
    headers = (("Authorization", f"Bearer {token}"),) if token else ()
    props = SourceProps(name="tail", addr=f"{host}:{port}", request_header=headers,
                        connect_timeout=CONNECT_TIMEOUT)
    try:
        sock = dial(url, props)
    except ConnectError as exc:
        if exc.status is not None:
            print(f"ekws: tail {stream}: {_refusal(exc)}", file=err)
        else:
            print(f"ekws: cannot reach ekws at {host}:{port}: is `ekws run` running? ({exc})", file=err)
        return FAILED
    conn = Connection(client=True, where=url, max_message_size=None)
    shown = dropped = 0
    code = OK
    # Ctrl-C interrupts a wait for records at once, but never a record half
    # printed and not yet counted: the summary line counts exactly what was shown.
    waiting = interrupted = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        if waiting:
            raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        while not interrupted:
            waiting = True
            try:
                data = sock.recv(RECV_SIZE)  # no timeout: wait for records as long as it takes
            finally:
                waiting = False
            if not data:
                conn.receive_eof()
            messages = conn.receive_data(data) if data else []
            owed = conn.data_to_send()
            if owed:
                sock.sendall(owed)
            for message in messages:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                if text.startswith('{"dropped"'):
                    dropped = int(json.loads(text).get("dropped", dropped))
                    print(f"ekws: tail {stream}: {dropped} record(s) dropped so far: this tail reads slower "
                          "than the stream receives (the stream is not slowed)", file=err, flush=True)
                    continue
                out.write(text + "\n")
                out.flush()
                shown += 1
            if conn.state is CLOSED:
                if conn.error is not None:
                    print(f"ekws: tail {stream}: the connection failed: {conn.error}", file=err)
                elif conn.close_code == 1006:
                    print(f"ekws: tail {stream}: the connection failed: the service closed it without "
                          "a close frame", file=err)
                else:
                    print(f"ekws: tail {stream}: the service ended the tail ({_close_text(conn)})", file=err)
                code = FAILED
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # stdout closed: `ekws tail s | head`
        _quiet_stdout(out)
    except (OSError, EkwsError) as exc:
        print(f"ekws: tail {stream}: the connection failed: {exc}", file=err)
        code = FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        close_connection(sock, conn)
        sock.close()
    print(f"ekws: tail {stream}: {shown} record(s) shown, {dropped} dropped", file=err)
    return code


def _close_text(conn: Connection) -> str:
    if conn.close_code is None or conn.close_code == 1005:
        return "no close code"
    reason = conn.close_reason
    return f"code {conn.close_code}{': ' + reason if reason else ''}"


def _quiet_stdout(out: TextIO) -> None:
    """Point stdout at /dev/null so the interpreter's exit flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
