#!/usr/bin/env bash
# Runs the FinOps Foundation's FOCUS validator (`focus-validator` on PyPI) on FOCUS exports, offline, with the FOCUS 1.2
# rules it ships, and fails when any mandatory rule (an id ending in -M) fails:
#
#   scripts/check-focus.sh reports/2026-11/focus.csv [more.csv …]
#
# The validator needs Python 3.12 (pyenv has it here); it is installed into .venv-focus on first use. Its pinned
# numpy (< 2) does not work with the pyarrow it pulls in, so numpy 2 is installed after it.
set -euo pipefail
(($#)) || { echo "usage: scripts/check-focus.sh FOCUS_CSV [...]" >&2; exit 2; }
# The files as given, from where the script was called.
files=()
for file in "$@"; do
  [ -f "$file" ] || { echo "check-focus: no such file: $file" >&2; exit 2; }
  files+=("$(cd "$(dirname "$file")" && pwd)/$(basename "$file")")
done
cd "$(dirname "$0")/.."
version=2.2.1

if [ ! -x .venv-focus/bin/focus-validator ] || ! .venv-focus/bin/pip show focus-validator 2>/dev/null | grep -x "Version: $version" >/dev/null; then
  python312=""
  for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 python3.12 /usr/bin/python3.12; do
    # A pyenv shim may exist without 3.12 being selected: only a candidate that runs counts.
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      python312="$(command -v "$candidate")"
      break
    fi
  done
  [ -n "$python312" ] || { echo "check-focus: focus-validator needs Python 3.12 (install it with pyenv)" >&2; exit 1; }
  echo "check-focus: installing focus-validator $version into .venv-focus (with $python312)" >&2
  rm -rf .venv-focus
  "$python312" -m venv .venv-focus
  .venv-focus/bin/pip install -q --disable-pip-version-check "focus-validator==$version"
  .venv-focus/bin/pip install -q --disable-pip-version-check "numpy>=2" 2>&1 | grep -v "dependency conflicts\|requires numpy<2\|pip's dependency resolver" >&2 || true
fi

# The validator opens its rules relative to the working directory: run it from its package's folder.
site="$(.venv-focus/bin/python -c 'import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))')"
status=0
for file in "${files[@]}"; do
  path="$file"
  out="$(cd "$site" && "$OLDPWD/.venv-focus/bin/focus-validator" --data-file "$path" --validate-version 1.2 --block-download --show-violations 2>&1)" || true
  summary="$(grep -E '^Total: ' <<<"$out" || true)"
  [ -n "$summary" ] || { echo "check-focus: $file: the validator gave no result:" >&2; echo "$out" >&2; status=1; continue; }
  mandatory="$(grep -E '^❌ [A-Za-z0-9-]+-M: FAIL' <<<"$out" || true)"
  others="$(grep -E '^❌ ' <<<"$out" | grep -vE '^❌ [A-Za-z0-9-]+-M: FAIL' || true)"
  if [ -n "$mandatory" ]; then
    echo "check-focus: $file FAILS mandatory FOCUS 1.2 rules ($summary):" >&2
    echo "$mandatory" >&2
    status=1
  else
    echo "check-focus: $file passes every mandatory FOCUS 1.2 rule ($summary)"
  fi
  # Non-mandatory results are shown, not failed on: InvoiceId-C-005-C ("not null when invoiced") is the branch of an OR
  # that does not apply while no invoice is known (InvoiceId-C-004-C, null, holds).
  [ -z "$others" ] || { echo "check-focus: other rules not met (conditional or optional):"; echo "$others"; }
done
exit $status
