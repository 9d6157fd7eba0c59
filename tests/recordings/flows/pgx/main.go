// pgx (v4) flows to record: `pgx-flows <flow>`, connecting to $PGHOST:$PGPORT.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v4"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	ctx := context.Background()
	url := fmt.Sprintf("postgres://app@%s:%s/app?sslmode=disable", os.Getenv("PGHOST"), os.Getenv("PGPORT"))
	conn, err := pgx.Connect(ctx, url)
	must(err)
	defer conn.Close(ctx)
	switch os.Args[1] {
	case "query":
		// pgx prepares every statement it runs (its statement cache): Parse/Describe/Sync, then
		// Bind/Execute/Sync; the second run of the same text is Bind/Execute only.
		var n int
		must(conn.QueryRow(ctx, "SELECT $1::int + 1", 1).Scan(&n))
		must(conn.QueryRow(ctx, "SELECT $1::int + 1", 2).Scan(&n))
		_, err = conn.Exec(ctx, "INSERT INTO rec_t (id, v) VALUES ($1, $2)", 300, "pgx")
		must(err)
	case "batch":
		b := &pgx.Batch{}
		b.Queue("SELECT count(*) FROM rec_t")
		b.Queue("INSERT INTO rec_t (id, v) VALUES ($1, $2)", 310, "batch")
		b.Queue("INSERT INTO rec_t (id, v) VALUES ($1, $2)", 311, "batch")
		b.Queue("SELECT v FROM rec_t WHERE id = $1", 310)
		br := conn.SendBatch(ctx, b)
		for i := 0; i < 4; i++ {
			_, err := br.Exec()
			must(err)
		}
		must(br.Close())
	case "copy-from":
		rows := [][]interface{}{{320, "cf"}, {321, "cf"}}
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"rec_t"}, []string{"id", "v"}, pgx.CopyFromRows(rows))
		must(err)
		_, err = conn.Exec(ctx, "INSERT INTO rec_t (id, v) VALUES ($1, $2)", 322, "after")
		must(err)
	case "transaction":
		tx, err := conn.Begin(ctx)
		must(err)
		_, err = tx.Exec(ctx, "INSERT INTO rec_t (id, v) VALUES ($1, $2)", 330, "tx")
		must(err)
		_, err = tx.Exec(ctx, "INSERT INTO rec_t (id, v) VALUES ($1, $2)", 330, "dup")
		if err == nil {
			must(fmt.Errorf("duplicate accepted"))
		}
		must(tx.Rollback(ctx))
	default:
		must(fmt.Errorf("unknown flow %q", os.Args[1]))
	}
}
