/* libpq flows to record: `libpq-flows <flow>`, connecting with PGHOST/PGPORT from the environment. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(PGconn *c, const char *what) {
  fprintf(stderr, "%s: %s\n", what, PQerrorMessage(c));
  exit(1);
}

static void drain(PGconn *c) {
  PGresult *r;
  while ((r = PQgetResult(c)) != NULL) PQclear(r);
}

/* Results of one pipeline up to and including its PGRES_PIPELINE_SYNC. */
static void read_pipeline(PGconn *c) {
  for (;;) {
    PGresult *r = PQgetResult(c);
    if (r == NULL) continue; /* end of one query's results */
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    if (s == PGRES_PIPELINE_SYNC) return;
  }
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  PGconn *c = PQconnectdb("user=app dbname=app sslmode=disable");
  if (PQstatus(c) != CONNECTION_OK) die(c, "connect");
  if (strcmp(argv[1], "execparams-copy") == 0) {
    /* COPY through the extended protocol: Parse/Bind/Describe/Execute/Sync, then CopyData. */
    PGresult *r = PQexecParams(c, "COPY rec_t (id, v) FROM STDIN", 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COPY_IN) die(c, "copy");
    PQclear(r);
    const char *rows = "600\tlibpq\n601\tlibpq\n";
    if (PQputCopyData(c, rows, (int)strlen(rows)) != 1 || PQputCopyEnd(c, NULL) != 1) die(c, "copy data");
    drain(c);
    r = PQexec(c, "SELECT count(*) FROM rec_t");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die(c, "after copy");
    PQclear(r);
  } else if (strcmp(argv[1], "pipeline") == 0) {
    if (!PQenterPipelineMode(c)) die(c, "pipeline");
    const char *id1 = "610", *id2 = "611", *v = "pipe";
    const char *p1[] = {id1, v}, *p2[] = {id2, v};
    PQsendQueryParams(c, "SELECT count(*) FROM rec_t", 0, NULL, NULL, NULL, NULL, 0);
    PQsendQueryParams(c, "INSERT INTO rec_t (id, v) VALUES ($1, $2)", 2, NULL, p1, NULL, NULL, 0);
    PQsendFlushRequest(c);
    PQflush(c);
    PQsendQueryParams(c, "INSERT INTO rec_t (id, v) VALUES ($1, $2)", 2, NULL, p2, NULL, NULL, 0);
    PQpipelineSync(c);
    read_pipeline(c);
    /* An error mid-pipeline: the server skips to the Sync. */
    PQsendQueryParams(c, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0);
    PQsendQueryParams(c, "INSERT INTO rec_t (id, v) VALUES ($1, $2)", 2, NULL, p1, NULL, NULL, 0);
    PQpipelineSync(c);
    read_pipeline(c);
    if (!PQexitPipelineMode(c)) die(c, "exit pipeline");
  } else {
    fprintf(stderr, "unknown flow %s\n", argv[1]);
    return 2;
  }
  PQfinish(c);
  return 0;
}
