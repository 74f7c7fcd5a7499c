"""The reference for scripts/bench-audit.sh: the same ingest-and-sum done by DuckDB.

Reads every segment under LOG_DIR with read_json into a DuckDB table (its own file, like our ledger), then sums
tokens by team and model through the config's key → team mapping. Prints seconds and the row count.
Usage: bench-audit.py CONFIG LOG_DIR DB_FILE
"""
import os
import sys
import time

import duckdb
import yaml

config_path, log_dir, db_file = sys.argv[1:4]
with open(config_path) as f:
    config = yaml.safe_load(f)
project_team = {p["id"]: p["team"] for p in config.get("projects", [])}
user_team = {u["id"]: u["team"] for u in config.get("users", [])}
key_team = [(k["id"], project_team.get(k.get("project")) or user_team.get(k.get("user")) or "") for k in config["keys"]]

for suffix in ("", ".wal"):
    if os.path.exists(db_file + suffix):
        os.remove(db_file + suffix)
started = time.time()
con = duckdb.connect(db_file)
con.execute(f"CREATE TABLE events AS SELECT * FROM read_json('{log_dir}/*/*.jsonl.gz', format='newline_delimited')")
con.execute("CREATE TABLE key_team (key VARCHAR, team VARCHAR)")
con.executemany("INSERT INTO key_team VALUES (?, ?)", key_team)
rows = con.execute("""
    SELECT COALESCE(t.team, 'unknown') AS team, e.model, count(*), sum(e.usage.input), sum(e.usage.output)
    FROM events e LEFT JOIN key_team t ON t.key = e.key GROUP BY 1, 2
""").fetchall()
count = con.execute("SELECT count(*) FROM events").fetchone()[0]
con.close()
print(f"{time.time() - started:.3f} {count} {len(rows)}")
