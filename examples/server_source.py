"""Server mode: listen on ws://0.0.0.0:10081/api/data and print what clients send.

    python examples/server_source.py            # the seed's defaults
    python examples/server_source.py --port 9000 --path /ingest

Any WebSocket client can send JSON objects or arrays of objects, e.g. with
websocket-client: ``websocket.create_connection("ws://127.0.0.1:10081/api/data")
.send('{"temperature": 23.5}')``. Ctrl-C stops the server (peers get 1001).
"""

from __future__ import annotations

import argparse
import logging
import sys

import ekws


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ip", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=10081)
    parser.add_argument("--path", default="/api/data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    environ = {
        "WEBSOCKET__DEFAULT__ADDR": "",
        "WEBSOCKET__SOURCE__HTTPSERVERIP": args.ip,
        "WEBSOCKET__SOURCE__HTTPSERVERPORT": str(args.port),
    }
    try:
        serve(environ, args.ip, args.port, args.path)
    except ekws.EkwsError as exc:  # a busy port, a bad path: one line, as `ekws run` prints it
        print(f"ekws: {exc}", file=sys.stderr)
        return 1
    return 0


def serve(environ: dict[str, str], ip: str, port: int, path: str) -> None:
    with ekws.Runtime(environ=environ) as rt:
        rt.create_stream(f'CREATE STREAM websocketDemo() WITH (DATASOURCE="{path}", '
                         'FORMAT="json", TYPE="websocket")')

        def on_message(msg: ekws.Message) -> None:
            print(msg.data, "from", msg.meta["peer"], "connection", msg.meta["connection"], flush=True)

        with rt.subscribe("websocketDemo", on_message, on_error=print):
            host, bound = rt.server_address or (ip, port)
            print(f"listening on ws://{host}:{bound}{path}", flush=True)
            rt.wait()


if __name__ == "__main__":
    sys.exit(main())
