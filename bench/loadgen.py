"""A small HTTP/1.1 load generator that sends each prepared request exactly once.

wrk cycles through its requests for a fixed time, so a click benchmark driven by it ends up
clicking decided requests again; this sends every request once, over `conc` keep-alive
connections to 127.0.0.1, and records each one's start time, latency and status.

    python bench/loadgen.py --port 3000 --conc 50 --mode closed requests.jsonl > results.json

Each input line is `{"path": ..., "headers": {...}, "body": "..."}` (a POST). Modes:
  closed  every connection sends its next request as soon as the last one is answered
  burst   `conc` requests leave at once; the next wave waits until all are answered
  paced   requests leave at `--rate` a second, on whichever of the `conc` connections is free

It runs in its own process so the benchmark's other work (the Slack emulator) cannot delay
its clock readings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any


def _encode(request: dict[str, Any], port: int) -> bytes:
    body = request["body"].encode()
    head = [f"POST {request['path']} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{name}: {value}" for name, value in request["headers"].items()]
    head += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(head).encode() + body


class Connection:
    """One keep-alive connection; `send` returns the status once the whole response is read."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            self.writer.close()
            self.writer = None
        return status


async def drive(
    raws: list[bytes], *, port: int, conc: int, mode: str, rate: float = 0.0
) -> list[tuple[float, float, int]]:
    """(start epoch seconds, latency ms, status) for each request, in input order."""
    results: list[tuple[float, float, int]] = [(0.0, 0.0, 0)] * len(raws)
    conns = [Connection(port) for _ in range(conc)]
    for conn in conns:  # connect up front: the figures are about requests, not handshakes
        conn.reader, conn.writer = await asyncio.open_connection("127.0.0.1", port)

    async def one(conn: Connection, index: int) -> None:
        started, t0 = time.time(), time.perf_counter()
        status = await conn.send(raws[index])
        results[index] = (started, (time.perf_counter() - t0) * 1000, status)

    if mode == "closed":
        todo = iter(range(len(raws)))

        async def loop(conn: Connection) -> None:
            for index in todo:
                await one(conn, index)

        await asyncio.gather(*(loop(conn) for conn in conns))
    elif mode == "paced":
        free: asyncio.Queue[Connection] = asyncio.Queue()
        for conn in conns:
            free.put_nowait(conn)
        start = time.perf_counter()

        async def paced(conn: Connection, index: int) -> None:
            await one(conn, index)
            free.put_nowait(conn)

        sent = []
        for index in range(len(raws)):
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            sent.append(asyncio.create_task(paced(await free.get(), index)))
        await asyncio.gather(*sent)
    else:
        for wave in range(0, len(raws), conc):
            indexes = range(wave, min(wave + conc, len(raws)))
            await asyncio.gather(*(one(conn, i) for conn, i in zip(conns, indexes, strict=False)))
    for conn in conns:
        if conn.writer is not None:
            conn.writer.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("requests", help="JSON lines, one request each")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conc", type=int, default=1)
    parser.add_argument("--mode", choices=["closed", "burst", "paced"], default="closed")
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second (paced)")
    args = parser.parse_args()
    with open(args.requests) as f:
        raws = [_encode(json.loads(line), args.port) for line in f if line.strip()]
    started = time.perf_counter()
    results = asyncio.run(
        drive(raws, port=args.port, conc=args.conc, mode=args.mode, rate=args.rate)
    )
    json.dump(
        {"seconds": time.perf_counter() - started, "results": results},
        sys.stdout,
        separators=(",", ":"),
    )


if __name__ == "__main__":
    main()
