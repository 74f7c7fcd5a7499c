"""Calls the provider bills that are cut off before their end: a client that leaves, an upstream that dies, a
collector that stops. Each leaves exactly one log line with its usage, the provider's when it came, else an estimate
marked usage_estimated. Run by scripts/test.sh with TALLY_BIN set to the built binary.
"""
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import threading
import time

import http.client
import json
import urllib.parse

import openai
import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
import mock_provider  # noqa: E402
from test_sdks import SECRET, read_events, sha, socket_port, start_collector, start_mock  # noqa: E402

PROMPT = "a prompt of forty characters, near enough"  # 41 characters: an estimate of 11 input tokens


def config(folder, mock_port, port, collector_id, on_abort):
    path = folder / f"{collector_id}.yaml"
    path.write_text(f"""
default_provider: openai
providers:
  - {{name: openai, kind: openai, base_url: "http://127.0.0.1:{mock_port}", api_key_env: SDK_OPENAI_KEY}}
orgs: [{{id: acme}}]
teams: [{{id: search, org: acme}}]
users: [{{id: alice, team: search}}]
keys:
  - {{id: k-sdk, sha256: {sha(SECRET)}, user: alice}}
collector:
  id: {collector_id}
  listen: 127.0.0.1:{port}
  log_dir: log
  revocations: revoked.tsv
  on_client_abort: {on_abort}
  drain_timeout: 20s
  shutdown_grace: 3s
  upstream_read_timeout: 1s
""")
    return path


@pytest.fixture(scope="module")
def stacks():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="tally-cutoff-"))
    mock, mock_port = start_mock(folder)
    env = dict(os.environ, SDK_OPENAI_KEY=mock_provider.OPENAI_KEY, TALLY_HASH_SECRET="sdk-test-secret")
    collectors = {}
    for collector_id, mode in (("drain", "drain"), ("cancel", "cancel")):
        with socket_port() as port:
            pass
        process, base = start_collector(config(folder, mock_port, port, collector_id, mode), env, folder, port)
        collectors[collector_id] = {"process": process, "base": base}
    yield {"folder": folder, **collectors}
    for c in collectors.values():
        if c["process"].poll() is None:
            c["process"].send_signal(signal.SIGTERM)
            c["process"].wait(timeout=30)
    mock.kill()
    mock.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


def wait_for(folder, collector_id, model, timeout=25):
    """The log lines of `model` written by `collector_id`, once there is one."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = [e for e in read_events(folder / "log") if e["collector"] == collector_id and e["model"] == model]
        if events:
            return events
        time.sleep(0.2)
    raise AssertionError(f"no log line for {model} from {collector_id}")


def leave_after_two_chunks(base, model):
    """Asks for a stream, reads two of its events, then closes the connection mid-stream."""
    url = urllib.parse.urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": PROMPT}]})
    connection.request("POST", "/openai/v1/chat/completions", body=body,
                       headers={"authorization": "Bearer " + SECRET, "content-type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    seen = 0
    while seen < 2:
        line = response.fp.readline()
        assert line, "the stream ended early"
        if line.startswith(b"data: "):
            seen += 1
    connection.sock.shutdown(2)
    connection.close()


def test_a_client_that_leaves_still_gets_its_call_billed_in_full(stacks):
    """By default the collector reads on after the client has gone, and logs the provider's own usage."""
    started = time.time()
    leave_after_two_chunks(stacks["drain"]["base"], "slow-usage")
    [event] = wait_for(stacks["folder"], "drain", "slow-usage")
    assert event["outcome"] == "client_abort" and event["error"] == "client disconnected"
    assert event["usage"] == {"input": 321, "output": 20, "cached_input": 0, "cache_write": 0, "reasoning": 0}
    assert "usage_estimated" not in event, "the provider's count, not an estimate"
    assert time.time() - started < 15


def test_cancel_mode_closes_at_once_and_estimates(stacks):
    leave_after_two_chunks(stacks["cancel"]["base"], "slow-usage")
    [event] = wait_for(stacks["folder"], "cancel", "slow-usage")
    assert event["outcome"] == "client_abort"
    assert event["usage_estimated"] is True
    # Input from the prompt (41 characters / 4, rounded up); output at least the chunks seen before leaving.
    assert event["usage"]["input"] == 11
    assert 2 <= event["usage"]["output"] < 20


def test_an_upstream_that_dies_mid_stream_makes_the_sdk_raise(stacks):
    client = openai.OpenAI(base_url=stacks["drain"]["base"] + "/openai/v1", api_key=SECRET, max_retries=0)
    chunks = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="dies", messages=[{"role": "user", "content": PROMPT}], stream=True):
            chunks.append(chunk)
    assert len(chunks) <= 2, "half an answer is not returned as a whole one"
    [event] = wait_for(stacks["folder"], "drain", "dies")
    assert event["outcome"] == "upstream_error" and event["error"] == "upstream stream broke off"
    assert event["usage_estimated"] is True
    assert event["usage"]["input"] == 11 and event["usage"]["output"] == 2


def test_an_upstream_silent_past_the_read_timeout_is_cut_off(stacks):
    """upstream_read_timeout (1 s here) bounds a provider's silence mid-answer: the client's answer is broken off and
    the call logged, not held for the 10-minute default."""
    client = openai.OpenAI(base_url=stacks["drain"]["base"] + "/openai/v1", api_key=SECRET, max_retries=0)
    started = time.time()
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="stalls", messages=[{"role": "user", "content": PROMPT}], stream=True):
            pass
    assert time.time() - started < 4.5
    [event] = wait_for(stacks["folder"], "drain", "stalls")
    assert event["outcome"] == "upstream_error" and event["usage_estimated"] is True


def test_calls_cut_off_by_shutdown_are_logged_before_the_collector_exits(stacks):
    client = openai.OpenAI(base_url=stacks["drain"]["base"] + "/openai/v1", api_key=SECRET, max_retries=0)
    result = {}

    def very_slow():
        try:
            for _ in client.chat.completions.create(model="very-slow", messages=[{"role": "user", "content": PROMPT}], stream=True):
                pass
            result["ended"] = "whole"
        except Exception as error:  # the collector stops before the 10 s stream ends
            result["ended"] = type(error).__name__

    thread = threading.Thread(target=very_slow)
    thread.start()
    time.sleep(1.0)
    process = stacks["drain"]["process"]
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    thread.join(timeout=30)
    assert result["ended"] != "whole"
    [event] = wait_for(stacks["folder"], "drain", "very-slow", timeout=2)
    assert event["outcome"] == "client_abort" and event["error"] == "cut off by the collector's shutdown"
    assert event["usage_estimated"] is True
    assert event["usage"]["input"] == 11 and 10 <= event["usage"]["output"] < 100
