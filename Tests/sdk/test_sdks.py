"""The official OpenAI, Anthropic and Google Gen AI Python SDKs, pointed at a real collector, plain and streamed.

Run by scripts/test.sh with TALLY_BIN set to the built `tally` and TALLY_COLLECTOR_BIN to `tally-collector`.
"""
import gzip
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
import mock_provider  # noqa: E402

SECRET = "tk-sdk-test-0123456789abcdefghijklmnopqrstuvwxyz01"
OTHER = "tk-sdk-test-revoked-0123456789abcdefghijklmnopqrst"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def read_events(log_dir):
    events = []
    for path in sorted(pathlib.Path(log_dir).glob("*/*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            events += [json.loads(line) for line in f if line.endswith("\n")]
    return events


def start_mock(folder):
    """The mock provider on a free port; returns the process and its port."""
    port_file = folder / "mock.port"
    mock = subprocess.Popen([sys.executable, str(HERE / "mock_provider.py"), str(port_file)])
    for _ in range(100):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.05)
    return mock, int(port_file.read_text())


def collector_command():
    """The `tally-collector` executable when TALLY_COLLECTOR_BIN names it (what production runs), else `tally collect`."""
    if os.environ.get("TALLY_COLLECTOR_BIN"):
        return [os.environ["TALLY_COLLECTOR_BIN"]]
    return [os.environ["TALLY_BIN"], "collect"]


def start_collector(config, env, folder, port):
    """The collector on `port`, once /readyz answers; returns the process and its base URL."""
    stderr = open(folder / "collector.log", "w")
    collector = subprocess.Popen(collector_command() + ["--config", str(config)], env=env, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(base + "/readyz", timeout=1).status == 200:
                return collector, base
        except Exception:
            time.sleep(0.05)
    collector.kill()
    raise RuntimeError("collector did not become ready: " + (folder / "collector.log").read_text())


@pytest.fixture(scope="module")
def stack():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="tally-sdk-"))
    mock, mock_port = start_mock(folder)
    with socket_port() as port:
        collector_port = port
    config = folder / "tally.yaml"
    config.write_text(f"""
default_provider: openai
providers:
  - {{name: openai, kind: openai, base_url: "http://127.0.0.1:{mock_port}", api_key_env: SDK_OPENAI_KEY}}
  - {{name: anthropic, kind: anthropic, base_url: "http://127.0.0.1:{mock_port}", api_key_env: SDK_ANTHROPIC_KEY}}
  - {{name: gemini, kind: gemini, base_url: "http://127.0.0.1:{mock_port}", api_key_env: SDK_GEMINI_KEY}}
  - {{name: azure, kind: azure, base_url: "http://127.0.0.1:{mock_port}", api_key_env: SDK_AZURE_KEY}}
orgs: [{{id: acme}}]
teams: [{{id: search, org: acme}}]
users: [{{id: alice, team: search}}]
keys:
  - {{id: k-sdk, sha256: {sha(SECRET)}, user: alice}}
  - {{id: k-over-budget, sha256: {sha(OTHER)}, user: alice}}
collector:
  id: sdk
  listen: 127.0.0.1:{collector_port}
  log_dir: log
  revocations: revoked.tsv
  reload_interval: 200ms
""")
    env = dict(os.environ, SDK_OPENAI_KEY=mock_provider.OPENAI_KEY, SDK_ANTHROPIC_KEY=mock_provider.ANTHROPIC_KEY,
               SDK_GEMINI_KEY=mock_provider.GEMINI_KEY, SDK_AZURE_KEY=mock_provider.AZURE_KEY,
               TALLY_HASH_SECRET="sdk-test-secret")
    collector, base = start_collector(config, env, folder, collector_port)
    yield {"base": base, "folder": folder, "collector": collector}
    if collector.poll() is None:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=30)
    mock.kill()
    mock.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


class socket_port:
    """A free loopback port."""
    def __enter__(self):
        import socket
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *a):
        self.s.close()


def test_openai_sdk_plain_and_streamed(stack):
    client = openai.OpenAI(base_url=stack["base"] + "/openai/v1", api_key=SECRET, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], user="end-user-1")
    assert reply.choices[0].message.content == "Hello from the mock!"
    assert reply.usage.prompt_tokens == 12 and reply.usage.completion_tokens == 5

    # The client does not ask for usage: it must see exactly the chunks it would have, and no usage-only chunk.
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the mock!"
    assert all(c.choices for c in chunks), "no usage-only chunk reaches a client that did not ask for it"

    asked = list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True,
                                                stream_options={"include_usage": True}))
    assert asked[-1].usage.prompt_tokens == 12 and asked[-1].choices == []

    # The default provider via /v1.
    default = openai.OpenAI(base_url=stack["base"] + "/v1", api_key=SECRET, max_retries=0)
    assert default.embeddings.create(model="text-embedding-3-small", input="hello").usage.prompt_tokens == 8


def test_anthropic_sdk_plain_and_streamed(stack):
    client = anthropic.Anthropic(base_url=stack["base"] + "/anthropic", api_key=SECRET, max_retries=0)
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "Hello from the mock!"
    assert message.usage.input_tokens == 10 and message.usage.output_tokens == 7
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the mock!"
    assert final.usage.output_tokens == 7


def test_google_genai_sdk_plain_and_streamed(stack):
    client = genai.Client(api_key=SECRET, http_options=genai_types.HttpOptions(base_url=stack["base"] + "/gemini"))
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="Hi",
                                           config=genai_types.GenerateContentConfig(system_instruction="Be brief."))
    assert reply.text == "Hello from the mock!"
    assert reply.usage_metadata.prompt_token_count == 100 and reply.usage_metadata.thoughts_token_count == 12
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == "Hello from the mock!"
    assert chunks[-1].usage_metadata.candidates_token_count == 30

    bad = genai.Client(api_key="tk-not-a-known-key-000000000000000000", http_options=genai_types.HttpOptions(base_url=stack["base"] + "/gemini"))
    with pytest.raises(genai.errors.ClientError) as info:
        bad.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert info.value.code == 401 and info.value.status == "UNAUTHENTICATED"


def test_azure_openai_sdk_plain_and_streamed(stack):
    client = openai.AzureOpenAI(azure_endpoint=stack["base"] + "/azure", api_key=SECRET, api_version="2024-10-21", max_retries=0)
    reply = client.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "Hello from the mock!"
    chunks = list(client.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the mock!"
    assert all(c.choices for c in chunks), "no usage-only chunk reaches a client that did not ask for it"


def test_sdks_surface_refusals(stack):
    bad = openai.OpenAI(base_url=stack["base"] + "/openai/v1", api_key="tk-not-a-known-key-000000000000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 401

    # The auditor's revocation list, as it writes it: the SDKs stop with insufficient_quota / rate_limit_error.
    line = "k-over-budget\tbudget: user alice spent 104% of her 500.00 USD month budget\t-\n"
    text = "# tally-revocations v1\n# sha256 %s\n%s" % (hashlib.sha256(line.encode()).hexdigest(), line)
    tmp = stack["folder"] / "revoked.tsv.tmp"
    tmp.write_text(text)
    tmp.rename(stack["folder"] / "revoked.tsv")
    time.sleep(0.8)
    over = openai.OpenAI(base_url=stack["base"] + "/openai/v1", api_key=OTHER, max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        over.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.code == "insufficient_quota"
    assert "104%" in str(info.value)
    over_anthropic = anthropic.Anthropic(base_url=stack["base"] + "/anthropic", api_key=OTHER, max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        over_anthropic.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])


def test_sdks_meet_the_endpoint_policy(stack):
    """Files, batches and the like are not metered: the SDKs get a permission error naming the endpoint, and nothing
    reaches the provider with the organisation's key; listing models still works."""
    client = openai.OpenAI(base_url=stack["base"] + "/openai/v1", api_key=SECRET, max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.files.list()
    assert info.value.code == "endpoint_not_allowed" and "'files'" in str(info.value)
    with pytest.raises(openai.PermissionDeniedError):
        client.batches.create(input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.PermissionDeniedError):
        client.images.generate(model="gpt-image-1", prompt="a cat")
    claude = anthropic.Anthropic(base_url=stack["base"] + "/anthropic", api_key=SECRET, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        claude.messages.batches.list()
    assert "'batches'" in str(info.value)
    refused = [e for e in read_events(stack["folder"] / "log") if (e.get("error") or "").startswith("endpoint not allowed")]
    # Lines reach the log within a batch; the collector is running, so look again briefly.
    for _ in range(50):
        if len(refused) >= 4:
            break
        time.sleep(0.1)
        refused = [e for e in read_events(stack["folder"] / "log") if (e.get("error") or "").startswith("endpoint not allowed")]
    assert sorted(e["error"] for e in refused) == [
        "endpoint not allowed: batches", "endpoint not allowed: batches", "endpoint not allowed: files", "endpoint not allowed: images"]
    assert all(e["outcome"] == "rejected_invalid" and e["status"] == 403 and e["key"] == "k-sdk" for e in refused)


def test_sigterm_with_a_stream_in_flight_loses_nothing(stack):
    client = openai.OpenAI(base_url=stack["base"] + "/openai/v1", api_key=SECRET, max_retries=0)
    result = {}

    def slow():
        chunks = list(client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "slow"}], stream=True))
        result["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(1.0)
    stack["collector"].send_signal(signal.SIGTERM)
    thread.join(timeout=30)
    assert stack["collector"].wait(timeout=30) == 0
    assert result["text"] == "Hello from the mock!" * 10, "the stream in flight finished"

    events = read_events(stack["folder"] / "log")
    by_outcome = {}
    for e in events:
        by_outcome.setdefault(e["outcome"], []).append(e)
    ok = by_outcome["ok"]
    assert len(ok) == 12, [e["endpoint"] for e in ok]
    assert [e["endpoint"] for e in ok].count("other") == 1, "listing models, the harmless read"
    assert len(by_outcome["rejected_invalid"]) == 4, "the endpoint policy's refusals"
    assert all(e["key"] == "k-sdk" for e in ok)
    gemini = [e for e in ok if e["provider"] == "gemini"]
    usage = {"input": 100, "output": 42, "cached_input": 40, "cache_write": 0, "reasoning": 12}
    assert [(e["endpoint"], e["stream"], e["usage"], e["model"]) for e in gemini] == [
        ("generate_content", False, usage, "gemini-2.5-flash-001"), ("generate_content", True, usage, "gemini-2.5-flash-001")]
    assert gemini[0]["prompt_hash"] and gemini[0]["prompt_hash"] != gemini[1]["prompt_hash"], "the system instruction is prompt"
    azure = [e for e in ok if e["provider"] == "azure"]
    assert [(e["stream"], e["usage"]["input"], e["model"]) for e in azure] == [
        (False, 12, "gpt-4o-mini-2024-07-18"), (True, 12, "gpt-4o-mini-2024-07-18")]
    chat = [e for e in ok if e["endpoint"] == "chat.completions" and e["provider"] == "openai"]
    assert [e["usage"]["input"] for e in chat] == [12, 12, 12, 12]
    assert chat[0]["user"] == "end-user-1"
    assert chat[-1]["model"] == "gpt-4o-mini-2024-07-18" and chat[-1]["stream"] is True
    messages = [e for e in ok if e["endpoint"] == "messages"]
    assert [e["usage"] for e in messages] == [{"input": 18, "output": 7, "cached_input": 5, "cache_write": 3, "reasoning": 0,
                                               "cache_write_1h": 2, "web_search_requests": 1}] * 2
    assert [e["service_tier"] for e in messages] == ["priority"] * 2, "the tier the provider says it served, as reported"
    assert [e.get("service_tier") for e in chat] == ["default"] * 4
    assert len(by_outcome["rejected_unknown_key"]) == 2
    assert len(by_outcome["rejected_revoked"]) == 2
    # No secret, virtual or real, ever reaches the log or the collector's own log lines.
    everything = json.dumps(events) + (stack["folder"] / "collector.log").read_text()
    for secret in (SECRET, OTHER, mock_provider.OPENAI_KEY, mock_provider.ANTHROPIC_KEY, mock_provider.GEMINI_KEY,
                   mock_provider.AZURE_KEY):
        assert secret not in everything
    # After a clean stop every segment is closed and gzipped.
    assert not list((stack["folder"] / "log").glob("*/*.jsonl"))
