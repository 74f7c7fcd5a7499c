"""End to end: a key goes over its budget through a real collector, `tally audit` revokes it, and the collector
refuses the key's next call with the budget message, as the official OpenAI SDK sees it.

Run by scripts/test.sh with TALLY_BIN set to the built binary.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import openai
import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
import mock_provider  # noqa: E402
from test_sdks import sha, socket_port, start_collector, start_mock  # noqa: E402

BUDGETED = "tk-e2e-budgeted-0123456789abcdefghijklmnopqrstuv"
FREE = "tk-e2e-free-0123456789abcdefghijklmnopqrstuvwxyz01"


@pytest.fixture()
def collector():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="tally-e2e-"))
    mock, mock_port = start_mock(folder)
    with socket_port() as port:
        collector_port = port
    config = folder / "tally.yaml"
    # The mock answers every chat call with 12 input tokens (4 cached) and 5 output tokens. At 1,000.00 per million
    # input tokens and nothing for output, one call costs 0.012: over the 0.01 day budget. The price names the model
    # the mock reports (gpt-4o-mini-2024-07-18): LiteLLM's built-in prices list that name, and an exact name in any
    # source beats a config price for the undated one.
    config.write_text(f"""
default_provider: openai
providers:
  - {{name: openai, kind: openai, base_url: "http://127.0.0.1:{mock_port}", api_key_env: E2E_OPENAI_KEY}}
orgs: [{{id: acme}}]
teams: [{{id: search, org: acme}}]
users: [{{id: alice, team: search}}, {{id: bob, team: search}}]
keys:
  - {{id: k-budgeted, sha256: {sha(BUDGETED)}, user: alice, budget: {{limit: 0.01, period: day}}}}
  - {{id: k-free, sha256: {sha(FREE)}, user: bob}}
pricing:
  models:
    - {{model: gpt-4o-mini-2024-07-18, input: 1000.00, output: 0}}
collector:
  id: e2e
  listen: 127.0.0.1:{collector_port}
  log_dir: log
  revocations: revoked.tsv
  reload_interval: 200ms
  fsync: always
audit:
  db: tally.sqlite
  timezone: UTC
""")
    env = dict(os.environ, E2E_OPENAI_KEY=mock_provider.OPENAI_KEY, TALLY_HASH_SECRET="e2e-secret")
    process, base = start_collector(config, env, folder, collector_port)
    yield {"base": base, "folder": folder, "config": config}
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    mock.kill()
    mock.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


def chat(base, key):
    client = openai.OpenAI(base_url=base + "/openai/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])


def test_a_key_over_budget_is_refused_after_the_audit(collector):
    assert chat(collector["base"], BUDGETED).usage.prompt_tokens == 12
    assert chat(collector["base"], FREE).usage.prompt_tokens == 12

    # cron's job: the audit reads the open segment's complete lines, prices them and writes the revocation list.
    revoked = collector["folder"] / "revoked.tsv"
    for _ in range(50):
        audit = subprocess.run([os.environ["TALLY_BIN"], "audit", "--config", str(collector["config"]), "--include-open"],
                               capture_output=True, text=True)
        assert audit.returncode == 0, audit.stderr
        if revoked.exists() and "k-budgeted" in revoked.read_text():
            break
        time.sleep(0.1)
    assert "1 budget breached, 1 key revoked" in audit.stdout, audit.stdout
    assert "k-free" not in revoked.read_text()

    # Within the collector's reload interval the key is refused, with the budget in the message; the other key works.
    time.sleep(1.0)
    with pytest.raises(openai.RateLimitError) as info:
        chat(collector["base"], BUDGETED)
    assert info.value.code == "insufficient_quota"
    assert "user alice" not in str(info.value)
    assert "key k-budgeted spent 120% (0.012) of its 0.01 USD day budget" in str(info.value)
    assert chat(collector["base"], FREE).usage.prompt_tokens == 12
