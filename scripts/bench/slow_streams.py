"""Many slow streams at once through the collector: N concurrent streaming chat calls, each on its own connection.

    python3 slow_streams.py HOST PORT KEY N

Prints one JSON line: how many calls completed whole (status 200, every event, the final [DONE]), how many failed and
why, and the spread of their durations. Each connection sends one request and reads its answer to the end.
"""
import asyncio
import json
import sys
import time

HOST, PORT, KEY, N = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
BODY = json.dumps({"model": "mock-gpt", "stream": True, "stream_options": {"include_usage": True},
                   "messages": [{"role": "user", "content": "tell me a long story"}]}).encode()
REQUEST = (f"POST /slow/v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {KEY}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY


async def one(results):
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(HOST, PORT, limit=1 << 20)
        writer.write(REQUEST)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        data = bytearray()
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = await reader.read(1 << 16)
            if not chunk:
                break
            data += chunk
        writer.close()
        events = data.count(b"data: ")
        if status == 200 and b"data: [DONE]" in data and events >= 101:
            results["ok"].append(time.monotonic() - started)
        else:
            results["bad"].append(f"status {status}, {events} events")
    except Exception as error:  # noqa: BLE001 - every failure is counted and named
        results["bad"].append(type(error).__name__)


async def main():
    results = {"ok": [], "bad": []}
    started = time.monotonic()
    await asyncio.gather(*(one(results) for _ in range(N)))
    took = sorted(results["ok"])
    pick = lambda q: round(took[min(len(took) - 1, int(q * len(took)))], 2) if took else None  # noqa: E731
    bad = {}
    for reason in results["bad"]:
        bad[reason] = bad.get(reason, 0) + 1
    print(json.dumps({"calls": N, "completed": len(took), "failed": len(results["bad"]), "failures": bad,
                      "wall_s": round(time.monotonic() - started, 2), "p50_s": pick(0.5), "max_s": pick(1.0)}))


asyncio.run(main())
