"""A small keep-alive HTTP/1.1 load generator on raw asyncio streams.

httpx costs more CPU per request than the server under test; this client only writes
pre-built request bytes and reads the status line and body, so the measured limit is
the server's, not the client's. Bounded in count and time; loopback targets only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def build_request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load generator only targets loopback")
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    lines += [f"Content-Length: {len(body)}", "Connection: keep-alive", "", ""]
    return "\r\n".join(lines).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def run(
    url: str,
    requests: list[bytes],
    *,
    concurrency: int = 16,
    rate: float | None = None,
    timeout: float = 120.0,
) -> Result:
    """Send every request once; with `rate`, at that many per second (open loop)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = Result()
    queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
    start = time.perf_counter()

    async def producer() -> None:
        for index, request in enumerate(requests):
            due = start + index / rate if rate else start
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await queue.put((request, due if rate else time.perf_counter()))
        for _ in range(concurrency):
            await queue.put((b"", 0.0))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                request, scheduled = await queue.get()
                if not request:
                    return
                sent = time.perf_counter() if rate is None else scheduled
                writer.write(request)
                await writer.drain()
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - sent)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.wait_for(
        asyncio.gather(producer(), *(connection() for _ in range(concurrency))), timeout
    )
    result.elapsed = time.perf_counter() - start
    return result
