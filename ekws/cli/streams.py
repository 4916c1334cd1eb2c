"""The stream commands: ``create``, ``show``, ``describe`` and ``drop stream``, each one ``POST /streams``."""

from __future__ import annotations

import json

from .session import OK, Commands, UsageError, error_message, read_file


def _statement(commands: Commands, sql: str) -> tuple[int, str]:
    """Run a stream statement as kuiper does (``Server.Stream``): ``(status, text or message)``."""
    status, text = commands.client.call("POST", "/streams", {"sql": sql})
    return status, text if status in (200, 201) else error_message(text)


def create_stream(commands: Commands, args: list[str]) -> int:
    if args[:1] == ["-f"]:
        if len(args) != 2:
            raise UsageError("create stream -f FILE takes one file")
        sql = _statement_from_file(args[1])
    else:
        if not args:
            raise UsageError("create stream NAME '(FIELDS) WITH (OPTIONS)'")
        sql = "CREATE STREAM " + " ".join(args)
    status, text = _statement(commands, sql)
    return commands.expect(status, text) if status in (200, 201) else commands.fail(text)


def show_streams(commands: Commands, args: list[str]) -> int:
    if args:
        raise UsageError("show streams takes no argument")
    code, names = commands.get_json("/streams")
    if code == OK:
        commands.print("\n".join(names) if names else "No stream definitions are found.")
    return code


def describe_stream(commands: Commands, args: list[str]) -> int:
    names = [a for a in args if a.lower() not in ("-json", "--json")]
    if len(names) != 1:
        raise UsageError("describe stream NAME [-json]")
    status, text = _statement(commands, f"DESCRIBE STREAM `{names[0]}`")
    if status not in (200, 201):
        return commands.fail(text)
    commands.print(describe_to_json(text) if len(names) != len(args) else text.rstrip("\n") + "\n")
    return OK


def drop_stream(commands: Commands, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("drop stream NAME")
    status, text = _statement(commands, f"DROP STREAM `{args[0]}`")
    return commands.expect(status, text) if status in (200, 201) else commands.fail(text)


def describe_to_json(text: str) -> str:
    """``describe stream NAME -json``: eKuiper's ``processor.DescribeToJson`` of the text form.

    ``{"Fields": [{"Name", "Type", "DefaultClause"?}], "Options": {"DATASOURCE:": "/x", ...}}``
    indented with tabs; the option names keep their colon, as kuiper's do.
    """
    body = text.replace("Fields\n" + "-" * 80 + "\n", "", 1)
    fields_part, _, options_part = body.partition("\n\n")
    fields = []
    for line in fields_part.split("\n"):
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        field = {"Name": parts[0], "Type": parts[1]}
        if len(parts) >= 4:
            field["DefaultClause"] = parts[3]
        fields.append(field)
    options: dict[str, str] = {}
    for line in options_part.strip("\n").split("\n"):
        if line:
            name, *value = line.split(" ")
            options[name] = "".join(value)
    return json.dumps({"Fields": fields or None, "Options": dict(sorted(options.items()))}, indent="\t",
                      ensure_ascii=False)


def _statement_from_file(path: str) -> str:
    """A file holding a statement, ``NAME (...) WITH (...)``, or eKuiper's ``{"sql": ...}``."""
    text = read_file(path).strip()
    if text.startswith("{"):
        try:
            sql = json.loads(text).get("sql")
        except (ValueError, AttributeError):
            sql = None
        if not isinstance(sql, str):
            raise UsageError(f"{path}: expected {{\"sql\": \"CREATE STREAM ...\"}}")
        return sql
    return text if text[:6].lower() == "create" else f"CREATE STREAM {text}"
