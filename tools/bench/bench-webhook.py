#!/usr/bin/env python3
"""A webhook for the event pusher benchmark: answers every POST with 204
at once (keep-alive), or, with --hang, reads requests and never answers.
Prints the number of requests answered, and of connections, when stopped
(SIGTERM).

Usage: bench-webhook.py PORT [--hang]"""
import asyncio
import signal
import sys

COUNT = 0
CONNECTIONS = 0


async def handle(reader, writer, hang):
    global COUNT, CONNECTIONS
    CONNECTIONS += 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if hang:
                continue
            COUNT += 1
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    writer.close()


async def main():
    port = int(sys.argv[1])
    hang = "--hang" in sys.argv
    server = await asyncio.start_server(lambda r, w: handle(r, w, hang), "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    print("webhook: %d requests answered on %d connections" % (COUNT, CONNECTIONS),
          file=sys.stderr)


asyncio.run(main())
