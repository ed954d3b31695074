"""A real gRPC client (grpcio) for tests/grpc.rs: one call, its outcome as
one JSON line on stdout.

    [GRPC_AUTHORITY=host] client.py TARGET unary|chat [BEARER_TOKEN]

GRPC_AUTHORITY: the `:authority` to send instead of TARGET (a virtual
host behind the same address).

`chat` sends three messages, each only after the answer to the previous
one arrived: streaming both ways, nothing buffered until the end.
"""

import json
import os
import queue
import sys

import grpc


def unary(channel, metadata):
    call = channel.unary_unary("/echo.Echo/Unary")
    reply, outcome = call.with_call(b"hello", metadata=metadata, timeout=20)
    return {
        "code": outcome.code().name,
        "replies": [reply.decode()],
        "initial": dict(outcome.initial_metadata()),
        "trailing": dict(outcome.trailing_metadata()),
    }


def chat(channel, metadata):
    outgoing = queue.Queue()

    def requests():
        while True:
            message = outgoing.get()
            if message is None:
                return
            yield message

    call = channel.stream_stream("/echo.Echo/Chat")(requests(), metadata=metadata, timeout=20)
    replies = []
    for i in range(3):
        outgoing.put(f"m{i}".encode())
        replies.append(next(call).decode())
    outgoing.put(None)
    replies.extend(r.decode() for r in call)
    return {
        "code": call.code().name,
        "replies": replies,
        "initial": dict(call.initial_metadata()),
        "trailing": dict(call.trailing_metadata()),
    }


def main():
    target, mode = sys.argv[1], sys.argv[2]
    metadata = [("authorization", "Bearer " + sys.argv[3])] if len(sys.argv) > 3 else []
    options = []
    if os.environ.get("GRPC_AUTHORITY"):
        options.append(("grpc.default_authority", os.environ["GRPC_AUTHORITY"]))
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            out = {"unary": unary, "chat": chat}[mode](channel, metadata)
        except grpc.RpcError as e:
            out = {
                "code": e.code().name,
                "details": e.details(),
                "initial": dict(e.initial_metadata() or ()),
                "trailing": dict(e.trailing_metadata() or ()),
            }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
