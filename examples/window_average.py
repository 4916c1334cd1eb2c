"""A window in a device script: per device, the average temperature of every 10 seconds.

    python examples/window_average.py                   # ws://0.0.0.0:10081/api/data
    python examples/window_average.py --window 1 --port 9000

Clients send JSON like ``{"deviceId": "d1", "temperature": 23.5}``; at the end
of every window (aligned to the clock: :00, :10, :20 ...) one line per device
is printed, as an eKuiper rule with the same SQL would send it. No service:
``rt.query`` runs the rule engine on the stream in this process. Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import ekws

SQL = ("SELECT deviceId, count(*) AS n, avg(temperature) AS avg_temp, max(temperature) AS max_temp "
       "FROM demo GROUP BY deviceId, TUMBLINGWINDOW(ss, {window})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ip", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=10081)
    parser.add_argument("--path", default="/api/data")
    parser.add_argument("--window", type=int, default=10, help="seconds (default 10)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    environ = {
        "WEBSOCKET__DEFAULT__ADDR": "",
        "WEBSOCKET__SOURCE__HTTPSERVERIP": args.ip,
        "WEBSOCKET__SOURCE__HTTPSERVERPORT": str(args.port),
    }
    try:
        with ekws.Runtime(environ=environ) as rt:
            rt.create_stream(f'CREATE STREAM demo() WITH (DATASOURCE="{args.path}", FORMAT="json", '
                             'TYPE="websocket")')

            def on_result(msg: ekws.Message) -> None:
                # meta: the window's bounds (ms since the epoch) besides the usual keys
                print(json.dumps({**msg.data, "window_start": msg.meta["window_start"],
                                  "window_end": msg.meta["window_end"]}), flush=True)

            with rt.query(SQL.format(window=args.window), on_result, on_error=print):
                host, port = rt.server_address or (args.ip, args.port)
                print(f"listening on ws://{host}:{port}{args.path}", flush=True)
                rt.wait()
    except ekws.EkwsError as exc:  # a busy port: one line, as `ekws run` prints it
        print(f"ekws: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
