"""A real gRPC server (grpcio, C core) for tests/grpc.rs.

Service `echo.Echo`, raw bytes (no protobuf schema needed):
- `Unary`: answers `echo:<request>`;
- `Chat`: bidirectional streaming, answers each message as it arrives.
Both return, in their initial metadata, the identity tollgate forwarded
(`x-seen-user`) and whether a client `authorization` reached the server,
and a trailer (`x-trailer`) that must pass through tollgate.

Prints the port it listens on (127.0.0.1, h2c), then serves until killed;
writes `call <user>` to stderr for each call it receives.
"""

import sys
from concurrent import futures

import grpc


def seen(ctx):
    md = dict(ctx.invocation_metadata())
    # One line per call that reached the server, for the tests to count.
    print("call", md.get("x-forwarded-user", "-"), file=sys.stderr, flush=True)
    return (
        ("x-seen-user", md.get("x-forwarded-user", "-")),
        ("x-seen-authorization", "yes" if "authorization" in md else "no"),
    )


def unary(request, ctx):
    ctx.send_initial_metadata(seen(ctx))
    ctx.set_trailing_metadata((("x-trailer", "unary"),))
    return b"echo:" + request


def chat(requests, ctx):
    ctx.send_initial_metadata(seen(ctx))
    for message in requests:
        yield b"echo:" + message
    ctx.set_trailing_metadata((("x-trailer", "chat"),))


def main():
    handler = grpc.method_handlers_generic_handler(
        "echo.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
