"""The framework floor of the service rows: uvicorn as `store-sql serve` runs it, answering
every request with a constant, so no request costs the server less.

    python tools/bench/service_floor.py --port 0        (or --socket PATH)

It binds like `serve` (`bind_tcp` / `bind_unix`), runs uvicorn with `serve`'s own
configuration (`uvicorn_config`: httptools, one write per answer, uvloop) and heap
settings (`settle_heap`), prints its address as one JSON line (`{"host", "port"}` or
`{"socket"}`), then serves until SIGTERM.
The app reads the whole body and answers 200 with an append's answer of the usual size,
written as raw ASGI messages: no routing, token, parsing, store or metrics. What a request
costs here is what uvicorn, httptools, uvloop and the sockets cost; bench_service.py times
it under the same 100 clients as the append rows (`service.concurrent_floor_http_*`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import uvicorn
import uvloop
from starlette.types import Message, Receive, Scope, Send

from store_sql.service.serve import bind_tcp, bind_unix, settle_heap, uvicorn_config

ANSWER = b'[{"id":"1a2b3c4d","parentId":"0f1e2d3c","existed":false,"pos":21}]'
HEAD: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-length", str(len(ANSWER)).encode()),
        (b"content-type", b"application/json"),
    ],
}
BODY: Message = {"type": "http.response.body", "body": ANSWER}


async def constant(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send(HEAD)
    await send(BODY)


async def _serve(args: argparse.Namespace) -> None:
    sock = bind_unix(Path(args.socket)) if args.socket else bind_tcp("127.0.0.1", args.port)
    server = uvicorn.Server(uvicorn_config(constant))
    settle_heap()
    if args.socket:
        print(json.dumps({"socket": args.socket}), flush=True)
    else:
        host, port = sock.getsockname()[:2]
        print(json.dumps({"host": host, "port": port}), flush=True)
    await server.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--socket")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
