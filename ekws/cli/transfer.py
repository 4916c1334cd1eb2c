"""Moving a service's content in and out: ``import``/``export ruleset`` and ``import``/``export data``."""

from __future__ import annotations

import json
from typing import Any

from .session import OK, Commands, UsageError, error_message, read_file


def import_ruleset(commands: Commands, args: list[str]) -> int:
    if len(args) != 2 or args[0] != "-f":
        raise UsageError("import ruleset -f FILE")
    content = read_file(args[1])
    return commands.expect(*commands.client.call("POST", "/ruleset/import", {"content": content}))


def export_ruleset(commands: Commands, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("export ruleset FILE")
    return _export(commands, "/ruleset/export", args[0],
                   "exported {streams} streams, 0 tables and {rules} rules")


def import_data(commands: Commands, args: list[str]) -> int:
    usage = "import data -f FILE [-p true|false]"
    flags = _flags(args, ("-f", "-p", "-s"), usage)
    if "-f" not in flags:
        raise UsageError(usage)
    partial = flags.get("-p", "false")
    if partial not in ("true", "false") or flags.get("-s", "false") not in ("true", "false"):
        raise UsageError("Expect p and s flags to be a boolean value (true or false).")
    if flags.get("-s") == "true":
        raise UsageError("import data -s true (stop the service after) is not supported by ekws")
    content = read_file(flags["-f"])
    path = "/data/import" + ("?partial=1" if partial == "true" else "")
    status, text = commands.client.call("POST", path, {"content": content})
    if status != 200:
        return commands.fail(error_message(text))
    commands.print(json.dumps(json.loads(text), indent=2))
    return OK


def export_data(commands: Commands, args: list[str]) -> int:
    """``export data FILE [-r '["rule1"]']``: all, or those rules with their streams and conf keys."""
    usage = "export data FILE [-r '[\"rule1\", ...]']"
    if len(args) == 3 and args[1] == "-r":
        try:
            rules = json.loads(args[2])
        except ValueError as exc:
            raise UsageError(f"-r: rules {args[2]} unmarshal error {exc}") from None
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise UsageError("-r: expected a JSON array of rule ids")
        return _export(commands, "/data/export", args[0], "export configuration success", rules)
    if len(args) != 1:
        raise UsageError(usage)
    return _export(commands, "/data/export", args[0], "export configuration success")


def _export(commands: Commands, path: str, file: str, sentence: str, body: Any = None) -> int:
    status, text = commands.client.call("GET" if body is None else "POST", path, body)
    if status != 200:
        return commands.fail(error_message(text))
    document = json.loads(text)
    try:
        with open(file, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        return commands.fail(f"fail to save to file {file}: {exc.strerror or exc}")
    commands.print(sentence.format(streams=len(document.get("streams") or {}),
                                   rules=len(document.get("rules") or {})))
    return OK


def _flags(args: list[str], names: tuple[str, ...], usage: str) -> dict[str, str]:
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        if args[i] not in names or i + 1 >= len(args):
            raise UsageError(usage)
        flags[args[i]] = args[i + 1]
        i += 2
    return flags


