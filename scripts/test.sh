#!/usr/bin/env bash
# The whole test suite, as CI runs it: the Swift tests, then the official OpenAI, Anthropic and Google Gen AI Python
# SDKs (in a virtualenv under .venv) against a real collector, the `tally-collector` executable production runs, then
# the FOCUS export through the FinOps Foundation's validator (Python 3.12, in .venv-focus).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build --build-tests
swift test --skip-build

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import openai, anthropic, google.genai, pytest" 2>/dev/null; then
  echo "test: installing the OpenAI, Anthropic and Google Gen AI SDKs into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "openai>=1.50" "anthropic>=0.40" "google-genai>=1.0" pytest
fi
bin="$(swift build --show-bin-path)"
TALLY_BIN="$bin/tally" TALLY_COLLECTOR_BIN="$bin/tally-collector" .venv/bin/python -m pytest -q -W ignore::DeprecationWarning Tests/sdk

# The FOCUS export against the FinOps Foundation's own validator. The golden reports are what this build generates for
# the demo months (ReportGoldenTests above fails on any byte of difference), tiers, long context and price gaps included.
scripts/check-focus.sh Tests/TallyCLITests/Golden/2026-10/focus.csv Tests/TallyCLITests/Golden/2026-11/focus.csv
