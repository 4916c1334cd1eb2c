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

import websocket

OK, FAILED = 0, 1
CONNECT_TIMEOUT = 10.0


def _refusal(exc: websocket.WebSocketBadStatusException) -> str:
    body: Any = getattr(exc, "resp_body", None) or b""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError, TypeError):
        message = None
    return str(message) if message else f"HTTP {exc.status_code}"


def tail(host: str, port: int, token: str | None, stream: str, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Print ``stream``'s records until Ctrl-C; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    url = f"ws://{host}:{port}/streams/{quote(stream, safe='')}/tail"
    headers = [f"Authorization: Bearer {token}"] if token else []
    try:
        ws = websocket.create_connection(url, header=headers, timeout=CONNECT_TIMEOUT,
                                         http_no_proxy=[host], skip_utf8_validation=False)
    except websocket.WebSocketBadStatusException as exc:
        print(f"ekws: tail {stream}: {_refusal(exc)}", file=err)
        return FAILED
    except (OSError, websocket.WebSocketException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"ekws: cannot reach ekws at {host}:{port}: is `ekws run` running? ({reason})", file=err)
        return FAILED
    ws.settimeout(None)  # wait for records as long as it takes; Ctrl-C interrupts
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
                opcode, frame = ws.recv_data_frame(False)
            finally:
                waiting = False
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                reason = _close_text(frame.data)
                print(f"ekws: tail {stream}: the service ended the tail ({reason})", file=err)
                code = FAILED
                break
            text = frame.data.decode("utf-8") if isinstance(frame.data, bytes) else str(frame.data)
            if text.startswith('{"dropped"'):
                dropped = int(json.loads(text).get("dropped", dropped))
                print(f"ekws: tail {stream}: {dropped} record(s) dropped so far: this tail reads slower "
                      "than the stream receives (the stream is not slowed)", file=err, flush=True)
                continue
            out.write(text + "\n")
            out.flush()
            shown += 1
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # stdout closed: `ekws tail s | head`
        _quiet_stdout(out)
    except (OSError, websocket.WebSocketException) as exc:
        print(f"ekws: tail {stream}: the connection failed: {exc}", file=err)
        code = FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        try:
            ws.close(timeout=1)
        except (OSError, websocket.WebSocketException):
            pass
    print(f"ekws: tail {stream}: {shown} record(s) shown, {dropped} dropped", file=err)
    return code


def _close_text(data: bytes) -> str:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        reason = data[2:].decode("utf-8", "replace")
        return f"code {code}{': ' + reason if reason else ''}"
    return "no close code"


def _quiet_stdout(out: TextIO) -> None:
    """Point stdout at /dev/null so the interpreter's exit flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def command(commands: Any, words: list[str]) -> int:
    """The ``tail`` verb of :mod:`ekws.cli.commands`: ``ekws tail STREAM``."""
    from .commands import UsageError

    if len(words) != 1 or words[0].startswith("-"):
        raise UsageError("tail STREAM (prints the stream's records as JSON lines until Ctrl-C)")
    client = commands.client
    return tail(client.host, client.port, client._token, words[0], commands.out, commands.err)
