"""The kuiper-style CLI: ``ekws create stream ...`` and friends, over the REST API.

Like eKuiper's ``bin/kuiper``, every command is one REST call (two for
``create rule``: the creation, then its status) to a running ``ekws run``.
Verbs and keywords are case-insensitive, and everything after ``create
stream`` is the rest of the statement, so the seed's ``ekws CREATE STREAM
demo'() with(format="json", ...)'`` works as written (the shell hands over
``demo() with(...)`` as one word).

The commands and their texts are ``bin/kuiper``'s (``cmd/kuiper/main.go`` and
``internal/server/rpc.go`` in eKuiper), with ``ekws`` for ``bin/kuiper``:
stream commands run as the statement through ``POST /streams`` (so ``drop
stream x`` fails with ``Stream command error: Drop stream fails: stream x is
not found.``), ``create rule`` prints ``Rule r1 was created successfully,
please use 'ekws getstatus rule r1' command to get rule status.``. Two
differences, both for scripts: an error goes to stderr with exit code 1
(kuiper prints it on stdout and exits 0), and a rule created (or started)
but not running is exit code 1 with the reason.

``-h``/``--help`` anywhere after a verb prints that command's usage and does
nothing else (``ekws drop rule --help`` never drops a rule named ``--help``).

Exit codes: 0 ok, 1 the service answered an error (its message printed) or
cannot be reached, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from .rules import (
    RULE_OPTION_DEFAULTS,
    create_rule,
    describe_rule,
    describe_rule_body,
    drop_rule,
    getstatus_import,
    getstatus_rule,
    gettopo_rule,
    lifecycle,
    show_rules,
    validate_rule,
)
from .session import (
    FAILED,
    HELP_WORDS,
    OK,
    TIMEOUT,
    USAGE,
    BadName,
    Client,
    Command,
    Commands,
    Unreachable,
    UsageError,
    error_message,
)
from .streams import create_stream, describe_stream, describe_to_json, drop_stream, show_streams
from .transfer import export_data, export_ruleset, import_data, import_ruleset

# The commands and what they share live in session, streams, rules and transfer; the names
# are re-exported here, where they were first defined.
__all__ = [
    "COMMANDS", "FAILED", "HELP_WORDS", "OK", "RULE_OPTION_DEFAULTS", "TIMEOUT", "USAGE", "BadName",
    "Client", "Command", "Commands", "Unreachable", "UsageError", "check_websocket", "create_rule",
    "create_stream", "describe_rule", "describe_rule_body", "describe_stream", "describe_to_json",
    "drop_rule", "drop_stream", "export_data", "export_ruleset", "getstatus_import", "getstatus_rule",
    "gettopo_rule", "help_text", "import_data", "import_ruleset", "run_command", "show_rules",
    "show_streams", "validate_rule",
]


# -- other -----------------------------------------------------------------------------------------


def check_websocket(commands: Commands, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("check websocket '<props json>', e.g. '{\"addr\": \"127.0.0.1:8080\"}'")
    try:
        props = json.loads(args[0])
    except ValueError as exc:
        raise UsageError(f"the props are not valid JSON: {exc}") from None
    if not isinstance(props, dict):
        raise UsageError("the props must be a JSON object")
    status, text = commands.client.call("POST", "/metadata/sources/connection/websocket", props)
    if status == 200:
        commands.print(error_message(text))
        return OK
    return commands.fail(error_message(text))


def _tail(commands: Commands, words: list[str]) -> int:
    """``ekws tail STREAM``: a websocket (:mod:`ekws.cli.tail`), not one REST call."""
    if len(words) != 1 or words[0].startswith("-"):
        raise UsageError("tail STREAM (prints the stream's records as JSON lines until Ctrl-C)")
    from .tail import tail  # here, not at the top: the other verbs never load the websocket client

    client = commands.client
    return tail(client.host, client.port, client.token, words[0], commands.out, commands.err)


# (verb, keyword) -> command; keyword "" is a verb that takes no keyword.
COMMANDS: dict[tuple[str, str], Command] = {
    ("create", "stream"): Command("create stream NAME '(FIELDS) WITH (OPTIONS)' | create stream -f FILE",
                                  "create a stream (FILE holds NAME (...) WITH (...) or {\"sql\": ...})",
                                  create_stream),
    ("create", "rule"): Command("create rule NAME '<rule json>' | create rule NAME -f FILE",
                                "create a rule (and start it unless triggered is false); exit 1 if it "
                                "did not start", create_rule),
    ("validate", "rule"): Command("validate rule NAME '<rule json>' | validate rule NAME -f FILE",
                                  "check a rule as create would, creating nothing", validate_rule),
    ("show", "streams"): Command("show streams", "list the streams", show_streams),
    ("show", "rules"): Command("show rules", "list the rules with their status", show_rules),
    ("describe", "stream"): Command("describe stream NAME [-json]", "the stream's fields and options",
                                    describe_stream),
    ("describe", "rule"): Command("describe rule NAME", "the rule's definition", describe_rule),
    ("drop", "stream"): Command("drop stream NAME", "drop a stream no rule reads", drop_stream),
    ("drop", "rule"): Command("drop rule NAME", "stop and delete a rule", drop_rule),
    ("start", "rule"): Command("start rule NAME", "start a rule; exit 1 if it did not start",
                               lifecycle("start", "Rule {} was started")),
    ("stop", "rule"): Command("stop rule NAME", "stop a rule", lifecycle("stop", "Rule {} was stopped.")),
    ("restart", "rule"): Command("restart rule NAME", "restart a rule; exit 1 if it did not start",
                                 lifecycle("restart", "Rule {} was restarted.")),
    ("getstatus", "rule"): Command("getstatus rule NAME", "the rule's status and metrics (eKuiper's JSON)",
                                   getstatus_rule),
    ("getstatus", "import"): Command("getstatus import", "what failed in the last data import (always "
                                     "empty: an ekws import is all or nothing)", getstatus_import),
    ("gettopo", "rule"): Command("gettopo rule NAME", "the rule's topology (sources and edges)",
                                 gettopo_rule),
    ("import", "ruleset"): Command("import ruleset -f FILE",
                                   "create or replace the streams and rules of an eKuiper ruleset file "
                                   "(all or nothing)", import_ruleset),
    ("export", "ruleset"): Command("export ruleset FILE", "write the streams and rules to FILE",
                                   export_ruleset),
    ("import", "data"): Command("import data -f FILE [-p true|false]",
                                "make the service hold what FILE holds (-p true: add and replace, drop "
                                "nothing); all or nothing", import_data),
    ("export", "data"): Command("export data FILE [-r '[\"rule1\", ...]']",
                                "write streams, rules and conf keys to FILE (-r: those rules, with the "
                                "streams and conf keys they use)", export_data),
    ("check", "websocket"): Command("check websocket '<props json>'",
                                    "connectivity check, e.g. '{\"addr\": \"127.0.0.1:8080\"}'",
                                    check_websocket),
    ("tail", ""): Command("tail STREAM", "print the stream's live records as JSON lines (Ctrl-C ends)",
                          _tail),
}
_ALIASES = {("show", "stream"): ("show", "streams"), ("show", "rule"): ("show", "rules")}


def help_text(verb: str, keyword: str | None = None) -> str:
    """The usage of one command, or of every command of a verb."""
    found = [(key, cmd) for key, cmd in COMMANDS.items()
             if key[0] == verb and (keyword is None or key[1] == keyword)]
    lines = [f"usage: ekws {cmd.usage}\n  {cmd.summary}" for _, cmd in found]
    return "\n".join(lines) + "\n\noptions: --host HOST, --port PORT, --token TOKEN (see ekws --help)"


def _lookup(words: list[str]) -> tuple[Command, list[str]]:
    verb = words[0].lower()
    if (verb, "") in COMMANDS:
        return COMMANDS[(verb, "")], words[1:]
    keywords = sorted(k for v, k in COMMANDS if v == verb)
    if not keywords:
        raise UsageError(f"unknown command {words[0]!r}")
    keyword = words[1].lower() if len(words) > 1 else ""
    key = _ALIASES.get((verb, keyword), (verb, keyword))
    if key not in COMMANDS:
        got = repr(words[1]) if len(words) > 1 else "nothing"
        raise UsageError(f"{verb} expects {' or '.join(keywords)} next, got {got}")
    return COMMANDS[key], words[2:]


def _help_for(words: list[str]) -> str | None:
    """The help a command line asks for (``-h``/``--help`` after the verb), else ``None``."""
    if not any(word in HELP_WORDS for word in words[1:]):
        return None
    verb = words[0].lower()
    if not any(v == verb for v, _ in COMMANDS):
        return None
    keyword = words[1].lower() if len(words) > 1 and words[1] not in HELP_WORDS else None
    if keyword is not None:
        verb, keyword = _ALIASES.get((verb, keyword), (verb, keyword))
        if (verb, keyword) not in COMMANDS:
            keyword = None
    if (verb, "") in COMMANDS:
        keyword = ""
    return help_text(verb, keyword)


def run_command(words: list[str], host: str, port: int, token: str | None,
                out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one kuiper-style command (``words[0]`` is the verb); returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    commands = Commands(Client(host, port, token), out, err)
    try:
        if not words:
            raise UsageError("no command given")
        wanted = _help_for(words)
        if wanted is not None:
            print(wanted, file=out)
            return OK
        command, args = _lookup(words)
        return command.run(commands, args)
    except UsageError as exc:
        print(f"ekws: {exc} (see ekws --help)", file=err)
        return USAGE
    except Unreachable as exc:
        print(f"ekws: {exc}", file=err)
        return FAILED
    except BadName as exc:
        print(exc, file=err)
        return FAILED
