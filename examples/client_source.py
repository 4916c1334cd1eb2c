"""Client mode: dial a WebSocket server and print every record it sends.

    python examples/client_source.py ws://127.0.0.1:8080/api/data

The URL's host:port becomes the conf key's ``addr`` and its path (and query)
the stream's DATASOURCE, exactly as eKuiper splits them. The source reconnects
forever with backoff; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlsplit

import ekws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="ws://host:port/path or wss://host:port/path")
    parser.add_argument("--insecure", action="store_true", help="wss: do not verify the certificate")
    args = parser.parse_args()
    url = urlsplit(args.url)
    if url.scheme not in ("ws", "wss") or not url.netloc:
        parser.error("the URL must look like ws://host:port/path")
    datasource = (url.path or "/") + (f"?{url.query}" if url.query else "")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    environ = {
        "WEBSOCKET__DEFAULT__ADDR": url.netloc,
        "WEBSOCKET__DEFAULT__SCHEME": url.scheme,
        "WEBSOCKET__DEFAULT__INSECURESKIPVERIFY": str(args.insecure).lower(),
    }
    with ekws.Runtime(environ=environ) as rt:
        rt.create_stream(f'CREATE STREAM demo() WITH (DATASOURCE="{datasource}", FORMAT="json", '
                         'TYPE="websocket")')

        def on_message(msg: ekws.Message) -> None:
            print(msg.data, "from", msg.meta["peer"], flush=True)

        def on_status(status: ekws.Status) -> None:
            print(f"[{status.state}] {status.url or ''} {status.error or ''}".rstrip(), flush=True)

        with rt.subscribe("demo", on_message, on_error=print, on_status=on_status):
            rt.wait()


if __name__ == "__main__":
    main()
