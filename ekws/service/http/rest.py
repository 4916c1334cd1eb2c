"""The REST API's plumbing: routes, errors, auth, limits and the HTTP server.

Routes are plain data, so each service module brings its own list and the
app is assembled from them (``api.ROUTES`` here; the rules module adds its
own)::

    Route("/streams/<name>", ("GET",), describe_stream)

A handler is ``handler(service, request, **url_args) -> Response``; it raises
:class:`ApiError` for a client error. Every response to a failed request is
eKuiper's JSON ``{"error": <eKuiper code>, "message": "..."}`` (the table
in :mod:`.errors` maps domain errors to a status and code); an exception a
handler did not expect is logged and answered 500, which the tests treat as
a bug for any input.

Bounds: bodies over 1 MiB get 413, JSON nested deeper than 32 levels 400, a
connection idle for 30 s is closed, at most 32 requests are served at once
(more wait in the listen backlog). With a
token, every request needs ``Authorization: Bearer <token>`` (compared in
constant time); tokens and header values never reach the logs.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from ...ddl import id_problem
from ...errors import EkwsError
from ...wire.server import listen_socket
from ...wire.workers import Workers
from .errors import answer, code_for_status

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20
MAX_CONCURRENT = 32
IDLE_TIMEOUT = 30.0
MAX_DEPTH = 32  # JSON nesting in a request body

Handler = Callable[..., Response]

# Path arguments checked as eKuiper checks ids: a bad one is a 400 on every path.
_CHECKED_ARGS = (("name", "stream name"), ("rule_id", "rule id"))


class ApiError(Exception):
    """A client error the REST layer finds itself (a bad body, a bad path argument).

    Answered ``{"error": code, "message": message}`` with eKuiper's code (1002
    for a 404, 1000 otherwise, unless given). Domain errors are not wrapped in
    this: handlers let them through to the table in :mod:`.errors`.
    """

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code_for_status(status) if code is None else code


@dataclass(frozen=True)
class Route:
    """One path (werkzeug rule syntax), its methods and the handler."""

    path: str
    methods: tuple[str, ...]
    handler: Handler
    public: bool = False  # served without the token (the status page's HTML: it holds no data)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, ensure_ascii=False, allow_nan=False), status,
                    mimetype="application/json")


def text_response(text: str, status: int = 200) -> Response:
    return Response(text, status, mimetype="text/plain")


def error_response(status: int, message: str, code: int | None = None) -> Response:
    """eKuiper's error body: ``{"error": <eKuiper code>, "message": ...}``."""
    body = {"error": code_for_status(status) if code is None else code, "message": message}
    return json_response(body, status)


def check_id(value: str, what: str) -> None:
    """eKuiper's rule for stream names and rule ids on every path (``pkg/validate``); 400 otherwise."""
    problem = id_problem(value)
    if problem is not None:
        raise ApiError(400, f"invalid {what}: {problem}")


def json_body(request: Request) -> Any:
    """The request body parsed as JSON; 400 naming the problem otherwise."""
    data = request.get_data(cache=True)  # 413 past MAX_BODY (raised by werkzeug) ...
    if request.content_length is None and len(data) >= MAX_BODY and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()  # ... but a chunked body is cut at the limit silently
    if not data.strip():
        raise ApiError(400, "the request body is empty; expected a JSON document")
    try:
        value = json.loads(data)
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8") from None
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        value = None
    if value is None or _depth(value) > MAX_DEPTH:
        if value is None and data.strip() == b"null":
            return None
        raise ApiError(400, f"the request body nests deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile body cannot blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack += [(child, level + 1) for child in item.values()]
        elif isinstance(item, list):
            stack += [(child, level + 1) for child in item]
    return deepest


def json_object(request: Request) -> dict[str, Any]:
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, f"expected a JSON object, got {type(body).__name__}")
    return body


class _Request(Request):
    max_content_length = MAX_BODY


class RestApp:
    """The WSGI application: routing, auth, limits and error shapes."""

    def __init__(self, service: Any, routes: Iterable[Route], token: str | None = None) -> None:
        self._service = service
        self._token = token.encode("utf-8") if token else None
        self._handlers: dict[str, Handler] = {}
        self._public: set[str] = set()
        rules = []
        for route in routes:
            endpoint = f"{route.path} {' '.join(route.methods)}"
            self._handlers[endpoint] = route.handler
            if route.public:
                self._public.add(endpoint)
            rules.append(Rule(route.path, methods=list(route.methods), endpoint=endpoint,
                              strict_slashes=False, merge_slashes=False))
        self.url_map = Map(rules)

    def routes(self) -> list[tuple[str, str]]:
        """``(path, METHOD)`` pairs with OpenAPI's ``{arg}`` syntax, for the document check."""
        out = []
        for rule in self.url_map.iter_rules():
            path = rule.rule.replace("<path:", "<").replace("<", "{").replace(">", "}")
            methods = sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"})
            out += [(path, method) for method in methods]
        return sorted(out)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = _Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if self._token is not None and not self._authorized(request) and not self._is_public(request):
            response = error_response(401, "missing or wrong bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="ekws"'
            return response
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            # As plain HTTP even with an Upgrade header: a WebSocket route (tail) upgrades itself.
            endpoint, args = adapter.match(websocket=False)
            if request.content_length is not None and request.content_length > MAX_BODY:
                raise RequestEntityTooLarge()
            for arg, what in _CHECKED_ARGS:
                if arg in args:
                    check_id(args[arg], what)
            return self._handlers[str(endpoint)](self._service, request, **args)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.code)
        except EkwsError as exc:
            known = answer(exc)
            if known is None:
                logger.exception("REST %s %s failed", request.method, request.path)
                return error_response(500, "internal error; see the service log")
            return error_response(known[0], str(exc), known[1])
        except RequestEntityTooLarge:
            return error_response(413, f"the request body is over {MAX_BODY} bytes")
        except MethodNotAllowed as exc:
            response = error_response(405, f"{request.method} is not allowed on {request.path}")
            response.headers["Allow"] = ", ".join(self._allowed(request.path, exc.valid_methods or ()))
            return response
        except NotFound:
            return error_response(404, f"no such path: {request.path}")
        except HTTPException as exc:
            code = exc.code or 400
            return error_response(code, exc.description or exc.name)
        except Exception:
            logger.exception("REST %s %s failed", request.method, request.path)
            return error_response(500, "internal error; see the service log")

    def _allowed(self, path: str, methods: Iterable[str]) -> list[str]:
        """The methods of the path's own route: ``/rules/validate`` is not also ``/rules/<rule_id>``."""
        static = [rule for rule in self.url_map.iter_rules()
                  if not rule.arguments and rule.rule.rstrip("/") == path.rstrip("/")]
        if static:
            methods = {method for rule in static for method in rule.methods or ()}
        return sorted(methods)

    def _is_public(self, request: Request) -> bool:
        if not self._public:
            return False
        try:
            endpoint, _ = self.url_map.bind_to_environ(request.environ).match(websocket=False)
        except HTTPException:
            return False
        return endpoint in self._public

    def authorized(self, request: Request) -> bool:
        """True without a token, else whether the request carries it (for a public route's data)."""
        return self._token is None or self._authorized(request)

    def _authorized(self, request: Request) -> bool:
        assert self._token is not None
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode("utf-8", "replace"), self._token)


class _Handler(WSGIRequestHandler):
    """Quiet, bounded request handling: no access log lines with query strings."""

    timeout = IDLE_TIMEOUT  # socketserver: idle keep-alive connections end

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("REST %s %s -> %s", self.command, self.path.split("?", 1)[0], code)

    def log_error(self, format: str, *args: Any) -> None:
        logger.debug("REST connection from %s: %s", self.client_address[0], format % args)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("REST: %s", format % args)


class RestServer:
    """The HTTP server of the REST API, in its own thread.

    The socket is bound here, so a port in use is a :class:`~ekws.BindError`
    (werkzeug's own bind would call ``sys.exit``).
    """

    def __init__(self, app: RestApp, host: str, port: int) -> None:
        self.app = app
        sock = listen_socket(host, port, backlog=64, what="the REST API: restIp/restPort")
        self._sock = sock
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        server = make_server(host, port, app, threaded=True, request_handler=_Handler, fd=sock.fileno())
        assert isinstance(server, ThreadedWSGIServer)
        self._server = server
        self._limit(server)
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="ekws-rest")

    def _limit(self, server: ThreadedWSGIServer) -> None:
        """At most MAX_CONCURRENT handler threads; the accept loop waits for a free slot.

        A thread that finished a request waits for the next (ekws.wire.workers):
        a thread per request let the service's RSS creep up (bench/soak.py).
        """
        workers = self._workers = Workers()

        def process(request: Any, client_address: Any) -> None:
            workers.submit(server.process_request_thread, request, client_address, name="ekws-rest-request")

        slots = self._slots
        finish = server.process_request_thread

        def limited_thread(request: Any, client_address: Any) -> None:
            try:
                finish(request, client_address)
            finally:
                slots.release()

        def limited(request: Any, client_address: Any) -> None:
            slots.acquire()
            try:
                process(request, client_address)
            except BaseException:
                slots.release()
                raise

        server.process_request_thread = limited_thread  # type: ignore[method-assign]
        server.process_request = limited  # type: ignore[method-assign]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting; requests in progress finish on their own threads."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
        self._workers.close()
        self._sock.close()


def routes_of(*lists: Sequence[Route]) -> list[Route]:
    return [route for routes in lists for route in routes]
