"""A small OpenAI-, Anthropic-, Gemini- and Azure-OpenAI-compatible provider for the SDK tests: known usage, plain and streamed."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENAI_KEY = "sk-real-openai-for-sdk-tests"
ANTHROPIC_KEY = "sk-ant-real-anthropic-for-sdk-tests"
GEMINI_KEY = "AIza-real-gemini-for-sdk-tests"
AZURE_KEY = "real-azure-for-sdk-tests"

# 100 prompt tokens (40 of them cached), 30 candidates and 12 thinking tokens.
GEMINI_USAGE = {"promptTokenCount": 100, "cachedContentTokenCount": 40, "candidatesTokenCount": 30, "thoughtsTokenCount": 12,
                "totalTokenCount": 142}

CHAT_USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
              "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_sse(self, events, pause=0.005):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events:
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(pause)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self):
        # Listing models: the one read every key may make through Tally.
        if self.path.split("?")[0].endswith("/models"):
            return self.send_json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "mock"}]})
        self.send_json(404, {"error": {"message": "mock: no such path", "type": "invalid_request_error", "param": None, "code": None}})

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.split("?")[0]
        if ":generateContent" in path or ":streamGenerateContent" in path:
            return self.gemini(path)
        azure = path.startswith("/openai/")
        if azure and (self.headers.get("api-key") != AZURE_KEY or self.headers.get("authorization")):
            return self.send_json(401, {"error": {"code": "401", "message": "mock: wrong key"}})
        anthropic = self.path.endswith("/messages")
        if anthropic and self.headers.get("x-api-key") != ANTHROPIC_KEY:
            return self.send_json(401, {"type": "error", "error": {"type": "authentication_error", "message": "mock: wrong key"}})
        if not anthropic and not azure and self.headers.get("authorization") != "Bearer " + OPENAI_KEY:
            return self.send_json(401, {"error": {"message": "mock: wrong key", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        stream = request.get("stream", False)
        if path.endswith("/chat/completions") and request.get("model") in ("slow-usage", "very-slow", "dies", "stalls"):
            return self.cut_off_stream(request)
        if path.endswith("/chat/completions"):
            slow = request.get("model") == "slow"
            if not stream:
                return self.send_json(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
                                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the mock!"}, "finish_reason": "stop"}],
                                            "usage": CHAT_USAGE, "service_tier": "default"})
            include = (request.get("stream_options") or {}).get("include_usage", False)
            words = ["Hello", " from", " the", " mock!"] * (10 if slow else 1)
            events = []
            for w in words:
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
                         "service_tier": "default", "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                if include:
                    chunk["usage"] = None
                events.append("data: " + json.dumps(chunk) + "\n\n")
            if include:
                events.append("data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
                                                     "service_tier": "default", "choices": [], "usage": CHAT_USAGE}) + "\n\n")
            events.append("data: [DONE]\n\n")
            return self.send_sse(events, pause=0.1 if slow else 0.005)
        if self.path.endswith("/messages"):
            # Three cache writes, two of them with the one-hour lifetime; one server-side web search; the priority tier.
            usage = {"input_tokens": 10, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 5, "output_tokens": 7,
                     "cache_creation": {"ephemeral_5m_input_tokens": 1, "ephemeral_1h_input_tokens": 2},
                     "server_tool_use": {"web_search_requests": 1}, "service_tier": "priority"}
            message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                       "content": [{"type": "text", "text": "Hello from the mock!"}], "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
            if not stream:
                return self.send_json(200, message)
            start_usage = {k: v for k, v in usage.items() if k != "server_tool_use"}
            start = dict(message, content=[], stop_reason=None, usage=dict(start_usage, output_tokens=1))

            def ev(name, obj):
                return "event: %s\ndata: %s\n\n" % (name, json.dumps(obj))
            return self.send_sse([
                ev("message_start", {"type": "message_start", "message": start}),
                ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello from"}}),
                ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " the mock!"}}),
                ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 7, "server_tool_use": {"web_search_requests": 1}}}),
                ev("message_stop", {"type": "message_stop"}),
            ])
        if self.path.endswith("/embeddings"):
            return self.send_json(200, {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
                                        "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}})
        self.send_json(404, {"error": {"message": "mock: no such path", "type": "invalid_request_error", "param": None, "code": None}})


    def cut_off_stream(self, request):
        """Streams for the cut-off tests: `slow-usage` 20 chunks over 4 s then usage; `very-slow` 100 chunks over 10 s;
        `dies` 2 chunks, then the connection drops without the stream's end."""
        model = request["model"]
        count, pause = {"slow-usage": (20, 0.2), "very-slow": (100, 0.1), "dies": (2, 0.05), "stalls": (4, 0.05)}[model]
        include = (request.get("stream_options") or {}).get("include_usage", False)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def send(obj):
            data = ("data: " + (obj if isinstance(obj, str) else json.dumps(obj)) + "\n\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        try:
            for i in range(count):
                if model == "stalls" and i == 2:
                    time.sleep(5)  # silent for longer than the test collector's upstream_read_timeout
                send({"id": "c2", "object": "chat.completion.chunk", "created": 1, "model": model, "service_tier": "default",
                      "choices": [{"index": 0, "delta": {"content": "w%d " % i}, "finish_reason": None}]})
                time.sleep(pause)
            if model == "dies":
                import socket
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if include:
                send({"id": "c2", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
                      "usage": {"prompt_tokens": 321, "completion_tokens": count, "total_tokens": 321 + count}})
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def gemini(self, path):
        if self.headers.get("x-goog-api-key") != GEMINI_KEY or "key=" in self.path:
            return self.send_json(400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}})

        def response(text, usage, finish):
            candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if finish:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash-001", "responseId": "r1"}
        if path.endswith(":generateContent"):
            return self.send_json(200, response("Hello from the mock!", GEMINI_USAGE, True))
        partial = dict(GEMINI_USAGE, candidatesTokenCount=10, totalTokenCount=122)
        chunks = [response("Hello from", partial, False), response(" the mock!", GEMINI_USAGE, True)]
        return self.send_sse(["data: " + json.dumps(c) + "\r\n\r\n" for c in chunks])


def serve(port_file):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
