"""The ``ekws`` command.

``ekws run -c etc`` runs the service on a config folder: it creates the
streams listed under ``streams:`` in ``etc/ekws.yaml``, subscribes to each,
and writes every record to stdout as one JSON line, until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

from . import __version__
from .config import load_service_config
from .errors import EkwsError
from .message import Message
from .runtime import Runtime

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ekws", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"ekws {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the streams of a config folder and print their records")
    run.add_argument("-c", "--config-dir", default="etc", help="the config folder (default: etc)")
    run.add_argument("--log-level", help="override logLevel of ekws.yaml (DEBUG, INFO, ...)")
    args = parser.parse_args(argv)
    try:
        return _run(args.config_dir, args.log_level, sys.stdout)
    except EkwsError as exc:
        print(f"ekws: {exc}", file=sys.stderr)
        return 2


def _run(config_dir: str, log_level: str | None, out: TextIO) -> int:
    service = load_service_config(config_dir)
    logging.basicConfig(level=(log_level or service.log_level).upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lock = threading.Lock()

    def emit(msg: Message) -> None:
        line = json.dumps({"data": msg.data, "meta": msg.meta}, default=_json_default)
        with lock:
            out.write(line + "\n")
            out.flush()

    with Runtime(config_dir) as rt:
        subscriptions = []
        for sql in service.streams:
            name = rt.create_stream(sql).name
            subscriptions.append(rt.subscribe(name, emit))  # the stream logs its own status
        if not subscriptions:
            logger.warning("no streams in %s/ekws.yaml: nothing to do until stopped", config_dir)
        elif rt.server_address:
            logger.info("server-mode streams listen on %s:%s", *rt.server_address)
        rt.wait()
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
