"""The demo's own listening socket: accepted connections get TCP_NODELAY like uvicorn's own."""

from __future__ import annotations

import asyncio
import socket

from geomelt.cli.demo import _bind


def test_accepted_connections_have_nodelay() -> None:
    # Without it a small response waits for the client's delayed ACK (~40 ms on Linux).
    listener = _bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = writer.get_extra_info("socket")
        seen.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(run())
    assert seen, "no connection was accepted"
    assert seen[0] != 0
