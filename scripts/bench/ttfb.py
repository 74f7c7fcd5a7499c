"""Time to the first event of a streamed answer, one call at a time on one kept-alive connection.

    python3 ttfb.py HOST PORT PATH KEY N

Prints one JSON line: p50 and p99 of the time from sending a streaming chat request to reading its first `data:`
event, and of the whole answer, in milliseconds. Run it against the collector and against the provider directly in
the same run: the difference is what the collector adds before the first token.
"""
import json
import socket
import sys
import time

HOST, PORT, PATH, KEY, N = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
BODY = json.dumps({"model": "mock-gpt", "stream": True, "stream_options": {"include_usage": True},
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
REQUEST = (f"POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {KEY}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY

sock = socket.create_connection((HOST, PORT))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
first, whole = [], []
for _ in range(N):
    started = time.perf_counter()
    sock.sendall(REQUEST)
    data = b""
    seen_first = None
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise SystemExit("connection closed")
        data += chunk
        if seen_first is None and b"data: " in data:
            seen_first = time.perf_counter()
    whole.append((time.perf_counter() - started) * 1000)
    first.append((seen_first - started) * 1000)
pick = lambda values, q: round(sorted(values)[min(len(values) - 1, int(q * len(values)))], 3)  # noqa: E731
print(json.dumps({"calls": N, "ttfb_p50_ms": pick(first, 0.5), "ttfb_p99_ms": pick(first, 0.99),
                  "whole_p50_ms": pick(whole, 0.5)}))
