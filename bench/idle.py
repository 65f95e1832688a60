"""Opens COUNT keep-alive connections to 127.0.0.1:PORT, sends one request on
each, reads the answer, prints "holding N" and holds them until killed."""

import asyncio
import re
import resource
import sys


async def hold(port, count):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 100)), hard))
    held = []
    gate = asyncio.Semaphore(256)

    async def one():
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /small HTTP/1.1\r\nHost: bench.local\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"content-length:\s*(\d+)", head, re.I)
            await reader.readexactly(int(length.group(1)) if length else 0)
            held.append(writer)

    await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    print(f"holding {len(held)}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(hold(int(sys.argv[1]), int(sys.argv[2])))
