// Command chasqui-queue-seed creates an edge store whose transactions were
// accepted at a given time in the past. It exists for tests that need an old
// backlog (the queue-age alert in deploy/test) without waiting for
// one: the store keeps each transaction's accept time, so a real
// chasqui-edge started on the directory afterwards reports that age, exactly
// as an edge restarted in the middle of a long outage does.
//
// It writes through the queue package itself (queue.Options.Now is the
// clock), after the same validation the edge's Submit applies, so the store
// is one chasqui-edge could have written. Test support only: it lives under
// internal/ and neither `make build` nor the release builds it.
//
// Usage:
//
//	chasqui-queue-seed --data-dir DIR --edge-id ID --accepted-at RFC3339 < submit-request.json
//
// stdin holds a SubmitRequest in protobuf JSON (as `chasqui submit -f -`
// takes it); transactions without an id get a UUIDv7.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chasqui/chasqui/edge/internal/queue"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/logging"
	"github.com/chasqui/chasqui/internal/validate"
)

func main() {
	if err := realMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "chasqui-queue-seed:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	// Plain flags, deliberately without the CHASQUI_* environment fallbacks
	// of the services: a CHASQUI_DATA_DIR left in the environment must never
	// point this tool at a real edge's store.
	fs := flag.NewFlagSet("chasqui-queue-seed", flag.ContinueOnError)
	dir := fs.String("data-dir", "", "store directory to create; must not exist or be empty (required)")
	edgeID := fs.String("edge-id", "", "edge id the store belongs to, as chasqui-edge --edge-id (required)")
	at := fs.String("accepted-at", "", "accept time stamped on every transaction, RFC 3339 (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	acceptedAt, err := time.Parse(time.RFC3339Nano, *at)
	switch {
	case *dir == "":
		return errors.New("--data-dir is required")
	case *edgeID == "":
		return errors.New("--edge-id is required")
	case err != nil:
		return fmt.Errorf("--accepted-at: %w", err)
	}
	// It creates a store and never alters one: transactions dated in the
	// past behind newer ones would break the accept order the queue keeps.
	if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("--data-dir %s is not empty", *dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}

	b, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	req := &edgev1.SubmitRequest{}
	if err := protojson.Unmarshal(b, req); err != nil {
		return fmt.Errorf("stdin: not a SubmitRequest in protobuf JSON: %w", err)
	}
	for _, tx := range req.GetTransactions() {
		if tx.GetId() == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			tx.Id = id.String()
		}
	}
	if err := validate.ValidateSubmit(req); err != nil {
		return err
	}

	logger, err := logging.New(os.Stderr, "warn")
	if err != nil {
		return err
	}
	q, err := queue.Open(queue.Options{
		Dir:    *dir,
		EdgeID: *edgeID,
		Logger: logger,
		Now:    func() time.Time { return acceptedAt },
	})
	if err != nil {
		return err
	}
	results, err := q.Submit(ctx, req.GetTransactions())
	if cerr := q.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out, err := protojson.Marshal(&edgev1.SubmitResponse{Results: results})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(out))
	return err
}
