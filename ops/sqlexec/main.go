// Command sqlexec runs one SQL statement against a PostgreSQL URL and prints the first column of
// each row. The demo and scripts use it so that no psql client is needed on the host.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sqlexec DATABASE_URL SQL")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqlexec: connect:", err)
		os.Exit(1)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, os.Args[2], pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqlexec:", err)
		os.Exit(1)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err == nil && len(vals) > 0 {
			fmt.Println(vals[0])
		}
	}
	if err := rows.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "sqlexec:", err)
		os.Exit(1)
	}
}
