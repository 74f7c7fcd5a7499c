#!/usr/bin/env bash
# Renders an HTML report to PNG in headless Chromium (Debian's package), to look at it as a reader would.
# Usage: scripts/screenshot-report.sh [REPORT.html] [OUT.png] [WIDTH]
#   default: the demo's current report (var/demo/reports/latest/report.html; runs scripts/demo.sh first when missing)
#   WIDTH 1280 (a laptop screen); 800 shows the narrow layout. Also writes OUT.pdf, the A4 print.
set -euo pipefail
cd "$(dirname "$0")/.."
report="${1:-var/demo/reports/latest/report.html}"
out="${2:-var/demo/report.png}"
width="${3:-1280}"

if [ ! -f "$report" ] && [ "$report" = "var/demo/reports/latest/report.html" ]; then
  echo "screenshot: no demo report yet; running scripts/demo.sh" >&2
  scripts/demo.sh >/dev/null
fi
[ -f "$report" ] || { echo "screenshot: $report does not exist" >&2; exit 66; }

browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "screenshot: installing chromium from Debian" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  browser="$(command -v chromium)"
fi

mkdir -p "$(dirname "$out")"
url="file://$(realpath "$report")"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions --user-data-dir="$(mktemp -d)")
# Tall enough for the whole page; Chromium crops to the window.
"$browser" "${flags[@]}" --window-size="$width,4200" --screenshot="$(realpath -m "$out")" "$url" 2>/dev/null
"$browser" "${flags[@]}" --no-pdf-header-footer --print-to-pdf="$(realpath -m "${out%.png}.pdf")" "$url" 2>/dev/null
echo "screenshot: $out and ${out%.png}.pdf from $report"
