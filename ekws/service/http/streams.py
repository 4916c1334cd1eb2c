"""REST routes for streams, conf keys, the connectivity check and the API itself.

eKuiper's paths, bodies and messages (``POST /streams`` answers 201 with the
text ``Stream demo is created.``). The handlers translate between HTTP and
the :class:`~ekws.service.app.Service`; they hold no state of their own.
"""

from __future__ import annotations

import json
import pkgutil
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from ...ddl import default_text, describe_text, parse_command
from ...errors import ConfigError, EkwsError, InUse, ReadOnly, ServerError, StreamExists, StreamNotFound
from .errors import STREAM_TABLE, answer
from .rest import ApiError, Route, json_object, json_response, text_response

if TYPE_CHECKING:
    from .ports import ServicePort

_MAX_NAME = 256


def _sql(request: Request) -> str:
    body = json_object(request)
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise ApiError(400, "expected {\"sql\": \"CREATE STREAM ...\"}")
    return sql


# -- streams --------------------------------------------------------------------------------


def create_stream(service: ServicePort, request: Request) -> Response:
    """``POST /streams`` runs any stream statement, as eKuiper's does.

    ``CREATE STREAM`` (201 ``Stream demo is created.``), ``DROP STREAM``,
    ``DESCRIBE STREAM`` (eKuiper's text form) and ``SHOW STREAMS`` (one name
    a line), all answered 201 as eKuiper does. A failure is eKuiper's 400
    with code 3000 (StreamTableError) and its ``Stream command error: ...``
    prefix, wrapping the words eKuiper uses for the verb.
    """
    sql = _sql(request)
    try:
        return text_response(_run_statement(service, sql), 201)
    except EkwsError as exc:
        if answer(exc) is None:
            raise
        raise ApiError(400, f"Stream command error: {exc}", STREAM_TABLE) from exc


def _run_statement(service: ServicePort, sql: str) -> str:
    command = parse_command(sql)
    if command is None:
        try:
            created = service.create_stream(sql)
        except (StreamExists, ServerError) as exc:  # eKuiper: "Create stream fails: Item d already exists."
            raise type(exc)(f"Create stream fails: {exc}") from exc
        return f"Stream {created} is created."
    verb, name = command
    if verb == "SHOW":
        return "\n".join(service.runtime.streams()) or "No stream definitions are found."
    assert name is not None
    if verb == "DESCRIBE":
        try:
            return describe_text(service.runtime.describe_stream(name))
        except StreamNotFound as exc:
            raise StreamNotFound(f"Describe stream fails, {exc}.", name=name) from exc
    try:
        service.drop_stream(name)
    except (StreamNotFound, InUse, ReadOnly) as exc:
        raise type(exc)(f"Drop stream fails: {exc}.", name=name) from exc
    return f"Stream {name} is dropped."


def list_streams(service: ServicePort, request: Request) -> Response:
    return json_response(service.runtime.streams())


def stream_details(service: ServicePort, request: Request) -> Response:
    out = []
    for name in service.runtime.streams():
        try:
            options = service.runtime.describe_stream(name).describe()["Options"]
        except StreamNotFound:  # dropped meanwhile
            continue
        out.append({"name": name, "type": options.get("type", "websocket"), "format": options.get("format"),
                    "datasource": options.get("datasource"), "origin": service.origin(name)})
    return json_response(out)


def describe_stream(service: ServicePort, request: Request, name: str) -> Response:
    """eKuiper's ``GET /streams/{name}``: Name, StreamFields, Options, StreamType, Statement.

    Fields are ``{"FieldType", "Name", "DefaultClause"?}`` (``pkg/ast/sourceStmt.go``
    ``StreamField.MarshalJSON``): a scalar type is its name (``"bigint"``), an
    array ``{"Type": "array", "ElementType": ...}``, a struct ``{"Type": "struct",
    "Fields": [...]}``; ``DefaultClause`` is the DEFAULT as eKuiper prints it.
    ``StreamType`` is 0 (a stream; ekws has no tables). ``Statement`` is the
    statement as given (eKuiper answers null there).
    """
    definition = service.runtime.describe_stream(name)
    body = definition.describe()
    fields = [{"FieldType": f.type.describe(), "Name": f.name,
               **({"DefaultClause": default_text(f.default)} if f.has_default else {})}
              for f in definition.fields]
    return json_response({"Name": body["Name"], "StreamFields": fields or None, "Options": body["Options"],
                          "StreamType": 0, "Statement": body["Statement"]})


def update_stream(service: ServicePort, request: Request, name: str) -> Response:
    sql = _sql(request)
    service.replace_stream(name, sql)
    return text_response(f"Stream {name} is updated.")


def drop_stream(service: ServicePort, request: Request, name: str) -> Response:
    service.drop_stream(name)
    return text_response(f"Stream {name} is dropped.")


def stream_schema(service: ServicePort, request: Request, name: str) -> Response:
    """eKuiper's ``GET /streams/{name}/schema`` (``pkg/ast`` ``JsonStreamField``): every level has
    ``type`` and ``index`` (0: ekws infers nothing), a DEFAULT is ``default``."""
    definition = service.runtime.describe_stream(name)
    out = {}
    for f in definition.fields:
        out[f.name] = _schema(f.type.describe())
        if f.has_default:
            out[f.name]["default"] = default_text(f.default)
    return json_response(out)


def _schema(field_type: Any) -> dict[str, Any]:
    """eKuiper's JSON-schema-like form of a described field type."""
    if isinstance(field_type, dict) and field_type.get("Type") == "array":
        return {"type": "array", "items": _schema(field_type["ElementType"]), "index": 0}
    if isinstance(field_type, dict) and field_type.get("Type") == "struct":
        properties = {f["Name"]: _schema(f["FieldType"]) for f in field_type["Fields"]}
        return {"type": "struct", "properties": properties, "index": 0}
    return {"type": str(field_type), "index": 0}


def stream_status(service: ServicePort, request: Request, name: str) -> Response:
    return json_response(service.runtime.status(name))


# -- conf keys --------------------------------------------------------------------------------


def list_confkeys(service: ServicePort, request: Request) -> Response:
    return json_response(service.confkeys())


def put_confkey(service: ServicePort, request: Request, key: str) -> Response:
    body = json_object(request)
    if len(body) == 1:  # eKuiper's docs show {"<key>": {props}}; the bare props work too
        (only, value), = body.items()
        if isinstance(only, str) and only.casefold() == key.casefold() and isinstance(value, dict):
            body = value
    _check_name(key, "conf key")
    try:
        service.put_confkey(key, body)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from exc
    return text_response(f"Conf key {key} is saved.")


def delete_confkey(service: ServicePort, request: Request, key: str) -> Response:
    service.delete_confkey(key)  # raises ApiError itself: 404 / 409
    return text_response(f"Conf key {key} is deleted.")


def _check_name(name: str, what: str) -> None:
    if not name.strip() or len(name) > _MAX_NAME or any(c in name for c in "\0\r\n"):
        raise ApiError(400, f"invalid {what} name {name[:40]!r}")


# -- checks and the API itself ------------------------------------------------------------------


def check_websocket(service: ServicePort, request: Request) -> Response:
    result = service.check(json_object(request))
    if not result.ok:
        raise ApiError(400, result.message)
    return json_response({"message": result.message})


def check_websocket_sink(service: ServicePort, request: Request) -> Response:
    """eKuiper's sink connectivity check: the props a ``websocket`` action takes.

    Checked as a rule would check them (a bad prop is a 400 naming it); client
    mode dials ``{scheme}://{addr}{path}`` and upgrades, as the action will;
    server mode (``addr: ""``) checks the shared server's address.
    """
    from ...actions import parse_action
    from ...actions.websocket import WebsocketConfig
    from ..check import check_client, check_server

    spec = parse_action({"websocket": json_object(request)}, 0)  # ActionError: 400 by the error table
    config = spec.config
    if isinstance(config, WebsocketConfig):
        path = config.url.split("://", 1)[1]
        path = path[path.index("/"):] if "/" in path else "/"
        result = check_client(config.props, path)
    else:
        result = check_server(service.runtime.config.server, service.runtime.server_address)
    if not result.ok:
        raise ApiError(400, result.message)
    return json_response({"message": result.message})


def ping(service: ServicePort, request: Request) -> Response:
    return Response("", 200)


def openapi(service: ServicePort, request: Request) -> Response:
    return Response(openapi_text(), 200, mimetype="application/json")


def openapi_text() -> str:
    # pkgutil, not importlib.resources: that import alone costs the service ~2 MB of RSS.
    data = pkgutil.get_data(__name__, "openapi.json")
    assert data is not None, "openapi.json is missing from the package"
    return data.decode("utf-8")


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_text())
    return document


ROUTES = [
    Route("/ping", ("GET",), ping),
    Route("/openapi.json", ("GET",), openapi),
    Route("/streams", ("GET",), list_streams),
    Route("/streams", ("POST",), create_stream),
    Route("/streamdetails", ("GET",), stream_details),
    Route("/streams/<name>", ("GET",), describe_stream),
    Route("/streams/<name>", ("PUT",), update_stream),
    Route("/streams/<name>", ("DELETE",), drop_stream),
    Route("/streams/<name>/schema", ("GET",), stream_schema),
    Route("/streams/<name>/status", ("GET",), stream_status),
    Route("/metadata/sources/yaml/websocket", ("GET",), list_confkeys),
    Route("/metadata/sources/websocket/confKeys/<key>", ("PUT",), put_confkey),
    Route("/metadata/sources/websocket/confKeys/<key>", ("DELETE",), delete_confkey),
    Route("/metadata/sources/connection/websocket", ("POST",), check_websocket),
    Route("/metadata/sinks/connection/websocket", ("POST",), check_websocket_sink),
]
