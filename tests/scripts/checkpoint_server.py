# A checkpoint workload (tests/tests/checkpoint.rs): an asyncio echo server (an epoll event
# loop) listening on 127.0.0.1 with one connection open, and a ticker task. It prints
# "ready", sleeps long enough to be checkpointed, then connects to its own server again
# and reports whether the new connection is served and what became of the old one.
# Restored, the lines after "ready" show what came back: a listening socket survives a
# restore, an established connection is reset.
import asyncio
import sys


async def handle(reader, writer):
    try:
        while data := await reader.readline():
            writer.write(b"echo:" + data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main(window):
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    old_r, old_w = await asyncio.open_connection("127.0.0.1", port)
    old_w.write(b"before\n")
    await old_w.drain()
    first = (await old_r.readline()).decode().strip()
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    print("ready", flush=True)
    await asyncio.sleep(window)

    before = ticks
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"after\n")
    await w.drain()
    reply = (await asyncio.wait_for(r.readline(), 10)).decode().strip()
    w.close()
    try:
        old_w.write(b"again\n")
        await old_w.drain()
        line = await asyncio.wait_for(old_r.readline(), 10)
        old = "alive" if line == b"echo:again\n" else "closed"
    except ConnectionError:
        old = "reset"
    old_w.close()
    await asyncio.sleep(0.2)
    ticker.cancel()
    moving = ticks > before
    print(f"first={first} new={reply} old={old} ticker_moving={moving}", flush=True)
    server.close()
    await server.wait_closed()


asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 6))
print("done", flush=True)
