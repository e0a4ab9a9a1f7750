"""A TCP relay that delays what it carries: the lab's WAN path (``twinsite lab wan``), since ``tc netem`` does not
exist on every kernel.

Each direction of each connection is delivered ``delay`` seconds after it was read (so a round trip through the
relay takes twice that more), in order, without holding back the rate: data read is queued with its time of
delivery, and a queue of at most ``window`` bytes per direction makes the relay push back on the sender like a
link would (TCP's own flow control). The rate itself is ``tc tbf``'s (lab.wan).

Run as ``python -m twinsite.lab.relay LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_SECONDS`` inside a host's
network namespace.
"""

from __future__ import annotations

import asyncio
import sys

WINDOW = 8 << 20  # bytes queued per direction at most (far above a 100 Mbit/s x 50 ms path's 625 KB)
CHUNK = 64 << 10


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    room = asyncio.Semaphore(WINDOW // CHUNK)

    async def feed() -> None:
        while True:
            await room.acquire()
            data = await reader.read(CHUNK)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    feeder = asyncio.create_task(feed())
    try:
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            room.release()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        feeder.cancel()


async def _serve(port: int, host: str, target: int, delay: float) -> None:
    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, target)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pump(reader, up_writer, delay), _pump(up_reader, writer, delay))
        finally:
            for w in (writer, up_writer):
                w.close()

    server = await asyncio.start_server(one, "0.0.0.0", port)  # noqa: S104 -- inside the lab host's namespace
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    port, host, target, delay = int(argv[0]), argv[1], int(argv[2]), float(argv[3])
    asyncio.run(_serve(port, host, target, delay))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
