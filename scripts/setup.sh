#!/usr/bin/env bash
# Installs what Tally needs to build on a fresh Debian machine, only when it is missing:
# the C libraries it links (SQLite, zlib, libdeflate, PCRE2) and a check for the Swift toolchain.
set -euo pipefail

packages=(libsqlite3-dev zlib1g-dev libpcre2-dev libdeflate-dev python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "setup: swift is not on PATH; add /opt/swift/usr/bin to PATH" >&2
  else
    echo "setup: no Swift toolchain found (Swift 6.2 or later is needed)" >&2
  fi
  exit 1
fi
