"""The rule commands: create, validate, show, describe, getstatus, gettopo, drop, start, stop, restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .session import OK, Commands, UsageError, checked_name, error_message, read_file


def _rule_path(args: list[str], verb: str, suffix: str = "") -> str:
    if len(args) != 1:
        raise UsageError(f"{verb} rule NAME")
    return f"/rules/{checked_name(args[0], 'rule id')}{suffix}"


def _rule_body(args: list[str], verb: str) -> tuple[str, dict[str, Any]]:
    """``NAME '<json>'`` or ``NAME -f FILE``: the name and the body with it as the id."""
    usage = f"{verb} rule NAME '<rule json>' or {verb} rule NAME -f FILE"
    if len(args) == 3 and args[1] == "-f":
        text, where = read_file(args[2]), args[2]
    elif len(args) == 3 and args[0] == "-f":  # kuiper's flag order: -f FILE NAME
        text, where = read_file(args[1]), args[1]
        args = [args[2]]
    elif len(args) == 2:
        text, where = args[1], "the rule"
    else:
        raise UsageError(usage)
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UsageError(f"{where}: expected a JSON object like "
                         '{"sql": "SELECT * FROM demo", "actions": [{"log": {}}]}')
    name = args[0]
    if body.get("id", name) != name:
        raise UsageError(f"{where}: its id {body['id']!r} differs from the rule name {name!r}")
    return name, {**body, "id": name}


def _not_running(commands: Commands, name: str) -> str | None:
    """The reason a rule that should run does not (its status message), or ``None``."""
    code, status = commands.get_json(f"/rules/{quote(name, safe='')}/status")
    if code != OK or not isinstance(status, dict) or status.get("status") == "running":
        return None
    return str(status.get("message") or status.get("status"))


def create_rule(commands: Commands, args: list[str]) -> int:
    """POST /rules with NAME as the id; exit 1 when the rule was created but did not start."""
    name, body = _rule_body(args, "create")
    status, text = commands.client.call("POST", "/rules", body)
    if status not in (200, 201):
        return commands.fail(error_message(text))
    commands.print(f"Rule {name} was created successfully, please use 'ekws getstatus rule {name}' "
                   "command to get rule status.")
    if body.get("triggered", True) is not False:
        reason = _not_running(commands, name)
        if reason is not None:
            return commands.fail(f"Rule {name} did not start: {reason}")
    return OK


def validate_rule(commands: Commands, args: list[str]) -> int:
    """POST /rules/validate; eKuiper's sentence when valid, the reason (exit 1) otherwise."""
    _, body = _rule_body(args, "validate")
    status, text = commands.client.call("POST", "/rules/validate", body)
    if status == 200:
        commands.print("The rule has been successfully validated and is confirmed to be correct.")
        return OK
    return commands.fail(error_message(text))


def show_rules(commands: Commands, args: list[str]) -> int:
    if args:
        raise UsageError("show rules takes no argument")
    code, rules = commands.get_json("/rules")
    if code == OK:
        commands.print(json.dumps(rules, indent=2) if rules else "No rule definitions are found.")
    return code


def describe_rule(commands: Commands, args: list[str]) -> int:
    """The rule as eKuiper's ``describe rule`` prints it: ``triggered`` and ``id`` first, options filled."""
    code, body = commands.get_json(_rule_path(args, "describe"))
    if code == OK:
        commands.print(json.dumps(describe_rule_body(body), indent=2, ensure_ascii=False))
    return code


# eKuiper's option order (internal/pkg/def/rule.go RuleOption), with the values ekws runs with when
# a body leaves them out (eKuiper's defaults except lateTolerance, 0 in ekws; bufferLength, when not
# given, is the stream's and so is not printed).
RULE_OPTION_DEFAULTS: dict[str, Any] = {
    "debug": False, "logFilename": None, "isEventTime": False, "lateTolerance": "0s", "concurrency": 1,
    "bufferLength": None, "sendMetaToSink": False, "sendNilField": False, "sendError": False, "qos": None,
    "checkpointInterval": None, "restartStrategy": {}}


def describe_rule_body(body: dict[str, Any]) -> dict[str, Any]:
    """``describe rule`` as kuiper prints it (``ExecDesc``: def.Rule re-marshalled): ``triggered``
    and ``id`` first, then the body's keys, the options with the defaults filled in."""
    out: dict[str, Any] = {"triggered": body.get("triggered", True), "id": body.get("id")}
    for key in ("name", "sql", "stream", "actions"):
        if key in body:
            out[key] = body[key]
    given = dict(body.get("options") or {})
    options = {key: given.pop(key, default) for key, default in RULE_OPTION_DEFAULTS.items()}
    out["options"] = {**{k: v for k, v in options.items() if v is not None}, **given}
    if body.get("tags"):
        out["tags"] = body["tags"]
    return out


def _json_answer(commands: Commands, path: str) -> int:
    code, value = commands.get_json(path)
    if code == OK:
        commands.print(json.dumps(value, indent=2, ensure_ascii=False))
    return code


def getstatus_rule(commands: Commands, args: list[str]) -> int:
    return _json_answer(commands, _rule_path(args, "getstatus", "/status"))


def getstatus_import(commands: Commands, args: list[str]) -> int:
    if args:
        raise UsageError("getstatus import takes no argument")
    return _json_answer(commands, "/data/import/status")


def gettopo_rule(commands: Commands, args: list[str]) -> int:
    return _json_answer(commands, _rule_path(args, "gettopo", "/topo"))


def drop_rule(commands: Commands, args: list[str]) -> int:
    return commands.expect(*commands.client.call("DELETE", _rule_path(args, "drop")))


def lifecycle(verb: str, sentence: str) -> Callable[[Commands, list[str]], int]:
    def command(commands: Commands, args: list[str]) -> int:
        path = _rule_path(args, verb, f"/{verb}")
        status, text = commands.client.call("POST", path)
        if status != 200:
            return commands.fail(error_message(text))
        commands.print(sentence.format(args[0]))
        if verb != "stop":
            reason = _not_running(commands, args[0])
            if reason is not None:
                return commands.fail(f"Rule {args[0]} did not start: {reason}")
        return OK
    return command


