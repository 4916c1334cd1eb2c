"""usage: ekws [--host HOST] [--port PORT] [--token TOKEN] COMMAND ...

ekws: eKuiper's WebSocket source connector as a service and a Python SDK.

Run the service (REST API, streams, sqlite store; see `ekws run --help`):
  ekws run [-c CONFIG_DIR] [--log-level LEVEL]

Manage a running service over its REST API, as eKuiper's bin/kuiper does
(verbs and keywords are case-insensitive):
  ekws create stream NAME '(FIELDS) WITH (OPTIONS)'
  ekws create stream -f FILE          a file holding NAME (...) WITH (...)
  ekws show streams
  ekws describe stream NAME [-json]
  ekws drop stream NAME
  ekws create rule NAME '<rule json>'  eKuiper's rule body, e.g.
      ekws create rule r1 '{"sql": "SELECT * FROM demo", "actions": [{"log": {}}]}'
  ekws create rule NAME -f FILE       a file holding the rule's JSON
  ekws show rules
  ekws describe rule NAME
  ekws drop rule NAME
  ekws start|stop|restart rule NAME
  ekws getstatus rule NAME            status and metrics (eKuiper's flat JSON)
  ekws gettopo rule NAME              the rule's sources and edges
  ekws validate rule NAME '<rule json>' | -f FILE   check a rule, create nothing
  ekws import ruleset -f FILE         eKuiper's ruleset file: streams and rules
  ekws export ruleset FILE
  ekws import data -f FILE [-p true]  make the service hold what FILE holds
  ekws getstatus import               what failed in the last data import
  ekws export data FILE [-r RULES]    streams, rules and conf keys (-r '["r1"]': just those)
  ekws check websocket '<props json>' connectivity check, e.g. '{"addr": "127.0.0.1:8080"}'
  ekws tail STREAM                    print the stream's live records as JSON lines (Ctrl-C ends)
  ekws COMMAND ... --help             the usage of one command (it does nothing else)

  e.g. ekws CREATE STREAM demo'() with(format="json", datasource="/api/data", type="websocket")'

options (for the commands that talk to the service):
  --host HOST     the REST API's host (default 127.0.0.1)
  --port PORT     the REST API's port (default 9081)
  --token TOKEN   bearer token when ekws.yaml sets authToken (default: $EKWS_TOKEN)
  --version       print the version
  -h, --help      this text

exit codes: 0 ok; 1 the service answered an error (printed) or cannot be
reached; 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import BindError, ConfigError, EkwsError

RUN_DESCRIPTION = """\
Run the ekws service on a config folder: the streams and rules declared in
ekws.yaml and those created over REST (kept in the sqlite store under dataDir),
the REST API (restIp:restPort, default 127.0.0.1:9081), until SIGTERM or SIGINT.
SIGHUP re-reads ekws.yaml and sources/websocket.yaml and applies the
difference (untouched streams keep their peers; a file that does not load
is logged and the running config kept). As in eKuiper a stream does nothing
until a rule reads it. Under systemd (Type=notify) it reports READY=1,
STATUS=, RELOADING=1 and the watchdog, and logs with journal priorities."""

RUN_EPILOG = """\
output:
  stdout: one JSON line per record of every rule with a `log` action (the
  shipped config has one on the demo stream), every line valid JSON:
    {"data": {...}, "meta": {"stream", "datasource", "peer", "connection", "timestamp"}}
  timestamp: ms since the epoch, the receive time (or the stream's TIMESTAMP
  field, its event time); binary payloads (FORMAT="binary", BYTEA fields) are
  base64 strings; NaN and Infinity are null.
  If stdout is closed (`ekws run | head -n 1`) the service stops cleanly.
  stderr: logs, one line each.

environment:
  WEBSOCKET__<CONFKEY>__<PROP>=value  overrides sources/websocket.yaml, e.g.
      WEBSOCKET__DEFAULT__ADDR=1.2.3.4:80  WEBSOCKET__SOURCE__HTTPSERVERPORT=10082
  EKWS__<PROP>=value                   overrides ekws.yaml, e.g.
      EKWS__RESTPORT=9082  EKWS__LOGLEVEL=DEBUG  EKWS__DATADIR=/var/lib/ekws
  Conf keys stored over REST win over both (as in eKuiper).
  NOTIFY_SOCKET, WATCHDOG_USEC: set by systemd for Type=notify.

exit codes:
  0  stopped cleanly (SIGTERM, SIGINT, stdout closed)
  1  cannot serve: a port in use
  2  bad configuration or usage (the message names the file and key), or
     a dataDir where the store cannot be opened
"""

_DEFAULT_HOST, _DEFAULT_PORT = "127.0.0.1", 9081
_GLOBAL = ("--host", "--port", "--token")


class _OneLine(logging.Formatter):
    """One log record, one line (journald, grep): tracebacks folded with ' | '.

    With ``priorities`` each line starts with its syslog priority, ``<3>``
    for ERROR and so on: journald reads that prefix from a service's stderr
    (``SyslogLevelPrefix=yes``, its default), so ``journalctl -p err`` finds
    the errors. Used when systemd connected stderr to the journal, which it
    says in ``$JOURNAL_STREAM``; a terminal or a file gets plain lines.
    """

    def __init__(self, fmt: str, *, priorities: bool = False) -> None:
        super().__init__(fmt)
        self.priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).replace("\n", " | ")
        return f"<{_priority(record.levelno)}>{line}" if self.priorities else line


def _stderr_is_journal(journal_stream: str) -> bool:
    """True if stderr is the stream systemd named in ``$JOURNAL_STREAM`` (``device:inode``).

    Compared, as systemd.exec(5) advises, because the variable is inherited:
    a unit whose ExecStart redirects stderr to a file still has it set.
    """
    device, _, inode = journal_stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # no stderr, or a replaced one without a fd
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def _priority(level: int) -> int:
    """syslog(3) priority of a logging level: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7."""
    if level >= logging.CRITICAL:
        return 2
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    if level >= logging.INFO:
        return 6
    return 7


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ekws`` command; returns the exit code (0 ok, 1 error, 2 usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, str] = {}
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if words and words[0].lower() == "run":
            words.append(arg)
        elif arg in ("-h", "--help", "help") and not words:
            print(__doc__.strip())
            return 0
        elif arg == "--version" and not words:
            print(f"ekws {__version__}")
            return 0
        elif arg.split("=", 1)[0] in _GLOBAL:
            name, eq, value = arg.partition("=")
            if not eq:
                if i + 1 >= len(args):
                    return _usage(f"{name} needs a value")
                i += 1
                value = args[i]
            options[name] = value
        elif arg.startswith("--") and not words:
            return _usage(f"unknown option {arg}")
        else:
            words.append(arg)
        i += 1
    if not words:
        return _usage("no command given")
    if words[0].lower() == "run":
        if options:
            return _usage(f"{', '.join(options)} is for the commands that talk to a running service, not run")
        return _run(words[1:])
    port_text = options.get("--port", str(_DEFAULT_PORT))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return _usage(f"--port: expected a port number 1..65535, got {port_text!r}")
    from .commands import run_command  # the client never loads the service

    token = options.get("--token", os.environ.get("EKWS_TOKEN")) or None
    return run_command(words, options.get("--host", _DEFAULT_HOST), int(port_text), token)


def _usage(message: str) -> int:
    print(f"ekws: {message} (see ekws --help)", file=sys.stderr)
    return 2


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ekws run", description=RUN_DESCRIPTION, epilog=RUN_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config-dir", default="etc", help="the config folder (default: etc)")
    parser.add_argument("--log-level",
                        help="override logLevel of ekws.yaml: DEBUG, INFO, WARNING, ERROR, CRITICAL")
    args = parser.parse_args(argv)  # exits 2 on a usage error, 0 for --help

    from ..service.app import Service, load_settings
    from ..service.http.rules import RulesPlugin

    journal = _stderr_is_journal(os.environ.get("JOURNAL_STREAM", ""))
    error = "<3>ekws: " if journal else "ekws: "
    try:
        settings = load_settings(args.config_dir, log_level=args.log_level)
    except ConfigError as exc:
        print(f"{error}{exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    # The journal stamps every entry itself: no second time stamp in the line.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not journal:
        fmt = "%(asctime)s " + fmt
    handler.setFormatter(_OneLine(fmt, priorities=journal))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    try:
        from ..service.http.live import LivePlugin

        service = Service(args.config_dir, settings, plugins=[RulesPlugin(), LivePlugin()],
                          log_level=args.log_level)
        clean = service.run()
    except ConfigError as exc:
        print(f"{error}{exc}", file=sys.stderr)
        return 2
    except (BindError, EkwsError) as exc:
        print(f"{error}{exc}", file=sys.stderr)
        return 1
    if not clean:  # a source or callback outlived the stop deadline: do not wait for it
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
