// Command ragplane is Ragplane in one binary: the services as subcommands (controlplane,
// proxy, dataplane; each configured from RAGPLANE_* variables, see the Config of each package)
// and the operator CLI that talks to the admin API (tenants, keys, token, plans, audit, usage,
// ingest, query ...). main only sets up the signal context and the JSON logger on stderr (level
// from RAGPLANE_LOG_LEVEL, default info) and dispatches (root.go).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv("RAGPLANE_LOG_LEVEL"))}))
	if err := newRootCommand(logger, os.Getenv).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err)) // exit.go: 2 usage, 3 auth, 4 not found, 5 conflict, 6 unavailable, 1 other
	}
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}
