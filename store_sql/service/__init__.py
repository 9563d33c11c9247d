"""The HTTP service: `store-sql serve` owns a database and serves it (docs/SERVICE.md).

app (the ASGI app: auth, errors, metrics) runs the route table (routing, operations: one
module of routes per noun) on uvicorn (serve); bodies checks request bodies, responses
splices stored bytes into answers, events wakes the Server-Sent Events streams, discovery
writes and reads `<db>.serve`, remote is the small client the CLI sends its writes with.
"""
