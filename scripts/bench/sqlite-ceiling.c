/* What SQLite itself costs for the ledger's row shape, with no Tally code: 1 M inserts of a 16-byte time-ordered
 * blob key, a timestamp and 25 more integer columns, in batches of 250,000 per transaction, WAL, synchronous=NORMAL,
 * 16 KiB pages. Usage: sqlite-ceiling DB "SCHEMA" COLUMNS   (see scripts/bench-sqlite-ceiling.sh) */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s DB SCHEMA COLUMNS\n", argv[0]); return 64; }
    const char *path = argv[1], *schema = argv[2];
    int columns = atoi(argv[3]), n = 1000000;
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(path);
    unlink(wal);
    sqlite3 *db;
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, 0);
    sqlite3_exec(db, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536", 0, 0, 0);
    char *error = 0;
    if (sqlite3_exec(db, schema, 0, 0, &error)) { fprintf(stderr, "%s\n", error); return 1; }
    char sql[4096] = "INSERT OR IGNORE INTO e VALUES (?";
    for (int i = 1; i < columns; i++) strcat(sql, ",?");
    strcat(sql, ")");
    sqlite3_stmt *statement;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, 0)) { fprintf(stderr, "%s\n", sqlite3_errmsg(db)); return 1; }
    srand(1);
    double started = now();
    sqlite3_exec(db, "BEGIN", 0, 0, 0);
    long long ts = 1790000000000LL;
    unsigned char id[16];
    for (int i = 0; i < n; i++) {
        ts += rand() % 4000;
        for (int b = 0; b < 6; b++) id[b] = (ts >> (40 - 8 * b)) & 255;
        for (int b = 6; b < 16; b++) id[b] = rand() & 255;
        sqlite3_reset(statement);
        sqlite3_bind_blob(statement, 1, id, 16, SQLITE_TRANSIENT);
        sqlite3_bind_int64(statement, 2, ts);
        for (int c = 3; c <= columns; c++) sqlite3_bind_int64(statement, c, c % 5 == 0 ? rand() % 100000 : c);
        if (sqlite3_step(statement) != SQLITE_DONE) { fprintf(stderr, "%s\n", sqlite3_errmsg(db)); return 1; }
        if (i % 250000 == 249999) sqlite3_exec(db, "COMMIT; BEGIN", 0, 0, 0);
    }
    sqlite3_exec(db, "COMMIT", 0, 0, 0);
    double seconds = now() - started;
    sqlite3_finalize(statement);
    sqlite3_close(db);
    FILE *file = fopen(path, "r");
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fclose(file);
    printf("%.2f s, %.0f rows/s, %ld bytes/row\n", seconds, n / seconds, size / n);
    return 0;
}
