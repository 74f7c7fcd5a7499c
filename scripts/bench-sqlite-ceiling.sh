#!/usr/bin/env bash
# SQLite's own speed for the ledger's row shape on this machine, with no Tally code (scripts/bench/sqlite-ceiling.c):
# the ceiling for any ingest that keeps one row per event. Prints rows/s for the ledger's layout and three leaner ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
work="$(mktemp -d "${TMPDIR:-/tmp}/tally-sqlite-ceiling.XXXXXX")"
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/ceiling" scripts/bench/sqlite-ceiling.c -lsqlite3
cols25=$(python3 -c "print(', '.join(f'c{i} INTEGER' for i in range(25)))")
cols8=$(python3 -c "print(', '.join(f'c{i} INTEGER' for i in range(8)))")
run() { printf '%-58s' "$1:"; "$work/ceiling" "$work/t.db" "$2" "$3"; }
echo "sqlite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo '?'), 1,000,000 rows, $(nproc) cores"
run "ledger layout (27 columns, blob key, ts index)" "CREATE TABLE e (id BLOB PRIMARY KEY, ts INTEGER, $cols25) WITHOUT ROWID; CREATE INDEX et ON e (ts);" 27
run "27 columns, blob key, no ts index" "CREATE TABLE e (id BLOB PRIMARY KEY, ts INTEGER, $cols25) WITHOUT ROWID;" 27
run "10 columns, blob key, ts index" "CREATE TABLE e (id BLOB PRIMARY KEY, ts INTEGER, $cols8) WITHOUT ROWID; CREATE INDEX et ON e (ts);" 10
run "27 columns, rowid table, no index (no dedup possible)" "CREATE TABLE e (id BLOB NOT NULL, ts INTEGER, $cols25);" 27
