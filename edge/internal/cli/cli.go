// Package cli is the `chasqui` command for operators: the edge's status,
// transactions, dead letters and submissions, as readable tables or, with
// --json, protobuf JSON for scripts.
//
// Exit codes (for scripts): 0 done; 1 the edge refused or failed the request;
// 2 usage error; 3 the edge is unreachable; 4 not found.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/auth"
	"github.com/chasqui/chasqui/internal/config"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/tlsconfig"
	"github.com/chasqui/chasqui/internal/version"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitUnreachable = 3
	ExitNotFound    = 4
)

const usage = `chasqui — operate a Chasqui edge

Usage:
  chasqui [flags] status                      queue, forwarder and replica at a glance
  chasqui [flags] get TX_ID                   one transaction's state (accepted, committed with LSN, visible, rejected)
  chasqui [flags] watch [TX_ID...]            follow state changes (all transactions when none is named)
  chasqui [flags] submit -f FILE              submit a SubmitRequest, a Transaction, or rows (a Row or a list
                                              of them, one transaction) in protobuf JSON ("-" = stdin)
  chasqui [flags] schema [TABLE]              the tables the edge may take rows for: columns, types, keys
  chasqui [flags] get-row TABLE KEY           one row, buffered writes merged over the replica (or central);
                                              KEY a JSON object of the key columns, or a value for a one-column key
  chasqui [flags] list-rows TABLE [--where COLUMN=VALUE]... [--page-size N] [--page-token T]
                                              rows in key order, merged the same way
  chasqui [flags] deadletters list            rejected transactions with their reasons
  chasqui [flags] deadletters show TX_ID      the reason and what it writes (rows: table, op, values)
  chasqui [flags] deadletters retry TX_ID [-f EDITED_TX.json] [--set [M:]COLUMN=VALUE]... [--unset [M:]COLUMN]...
  chasqui [flags] deadletters discard TX_ID
  chasqui certs init|issue-edge|issue-central|issue-client [flags]   a site's CA and certificates ('chasqui certs -h')

Exit codes: 0 done, 1 refused or failed, 2 usage, 3 edge unreachable, 4 not found.

Environment: each flag is also read from CHASQUI_CLI_<FLAG> (--addr from
CHASQUI_CLI_ADDR). The CLI ignores the edge's own CHASQUI_* settings, which
name its listen addresses and its server certificate.
`

// EnvPrefix starts the names of the CLI's environment variables. It differs
// from the services' config.EnvPrefix: on an edge host the operator's shell
// often has the edge's environment exported, where CHASQUI_ADMIN_ADDR is a
// listen address and CHASQUI_TLS_CERT the edge's server certificate.
const EnvPrefix = "CHASQUI_CLI_"

// Env is what the command reads from and writes to (os.* outside tests).
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
}

type options struct {
	addr, adminAddr string
	json            bool
	timeout         time.Duration
	tls             tlsconfig.Files
	// Bearer tokens (secrets: from the environment, never printed).
	token, adminToken string
}

// Run executes the command line args (without the program name) and returns
// the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	fs := flag.NewFlagSet("chasqui", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:7444", "edge gRPC address")
	fs.StringVar(&o.adminAddr, "admin-addr", "", "edge admin gRPC address: chasqui-edge's --admin-addr, when it has one (default: --addr)")
	fs.BoolVar(&o.json, "json", false, "print protobuf JSON instead of tables")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up on the edge after this long")
	config.AddClientTLS(fs, &o.tls, "CA that signs the edge's certificate (TLS when set)")
	fs.StringVar(&o.token, "instrument-token", "", "bearer token for the edge service, when the edge requires one (prefer the environment variable)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token for the admin service, when the edge requires one (prefer the environment variable)")
	var showVersion bool
	config.AddVersion(fs, &showVersion)
	fs.Usage = config.UsagePrefixed(fs, EnvPrefix, strings.TrimSuffix(usage, "\n"))
	if err := config.ParsePrefixed(fs, args, env.LookupEnv, EnvPrefix); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintln(env.Stderr, "chasqui:", err)
		return ExitUsage
	}
	if showVersion {
		fmt.Fprintln(env.Stdout, "chasqui", version.String())
		return ExitOK
	}
	if o.adminAddr == "" {
		o.adminAddr = o.addr
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return ExitUsage
	}
	c := &command{o: o, env: env}
	defer c.close()
	// Every command but watch is bounded by --timeout; watch runs until interrupted.
	runCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var err error
	switch rest[0] {
	case "status":
		err = c.status(ctx)
	case "get":
		err = c.get(ctx, rest[1:])
	case "watch":
		err = c.watch(runCtx, rest[1:])
	case "submit":
		err = c.submit(ctx, rest[1:])
	case "schema":
		err = c.schemaCmd(ctx, rest[1:])
	case "get-row":
		err = c.getRow(ctx, rest[1:])
	case "list-rows":
		err = c.listRows(ctx, rest[1:])
	case "deadletters", "dl":
		err = c.deadLetters(ctx, rest[1:])
	case "certs":
		err = c.certsCmd(rest[1:])
	default:
		err = usageError("unknown command %q", rest[0])
	}
	return c.exit(err)
}

type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg }

func usageError(format string, args ...any) error { return usageErr{fmt.Sprintf(format, args...)} }

type command struct {
	o     options
	env   Env
	conns []*grpc.ClientConn
}

func (c *command) dial(addr, token string) (*grpc.ClientConn, error) {
	o := grpcclient.Options{
		Logger: slog.New(slog.DiscardHandler),
		// An operator waits seconds, not minutes: few attempts.
		MaxAttempts: 3, PerAttemptTimeout: 3 * time.Second,
	}
	if c.o.tls.CA != "" {
		t, err := tlsconfig.Client(c.o.tls)
		if err != nil {
			return nil, usageError("%v", err)
		}
		o.TLS = t
	}
	var extra []grpc.DialOption
	if token != "" {
		// Sent only over TLS, unless the edge is on this machine.
		extra = append(extra, grpc.WithPerRPCCredentials(auth.BearerToken(token, o.TLS != nil || !tlsconfig.IsLoopback(addr))))
	}
	conn, err := grpcclient.Dial(addr, o, extra...)
	if err != nil {
		return nil, err
	}
	c.conns = append(c.conns, conn)
	return conn, nil
}

func (c *command) close() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

func (c *command) edge() (edgev1.EdgeServiceClient, error) {
	conn, err := c.dial(c.o.addr, c.o.token)
	if err != nil {
		return nil, err
	}
	return edgev1.NewEdgeServiceClient(conn), nil
}

func (c *command) admin() (edgev1.AdminServiceClient, error) {
	conn, err := c.dial(c.o.adminAddr, c.o.adminToken)
	if err != nil {
		return nil, err
	}
	return edgev1.NewAdminServiceClient(conn), nil
}

// exit turns an error into a message and an exit code a script can use.
func (c *command) exit(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue usageErr
	if errors.As(err, &ue) {
		fmt.Fprintln(c.env.Stderr, "chasqui:", ue.msg)
		fmt.Fprintln(c.env.Stderr, "run 'chasqui -h' for usage")
		return ExitUsage
	}
	st, ok := status.FromError(err)
	if !ok {
		fmt.Fprintln(c.env.Stderr, "chasqui:", err)
		return ExitFailed
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		fmt.Fprintf(c.env.Stderr, "chasqui: the edge at %s is unreachable (%s); is chasqui-edge running there? (--addr, %s)\n",
			c.o.addr, st.Message(), config.PrefixedEnvName(EnvPrefix, "addr"))
		return ExitUnreachable
	case codes.NotFound:
		fmt.Fprintln(c.env.Stderr, "chasqui: not found:", st.Message())
		return ExitNotFound
	case codes.Unimplemented:
		if hint := c.wrongAddress(st.Message()); hint != "" {
			fmt.Fprintln(c.env.Stderr, "chasqui:", hint)
			return ExitUsage
		}
		fmt.Fprintln(c.env.Stderr, "chasqui: this edge does not offer that yet:", st.Message())
		return ExitFailed
	default:
		fmt.Fprintf(c.env.Stderr, "chasqui: %s: %s\n", st.Code(), st.Message())
		return ExitFailed
	}
}

// wrongAddress explains an "unknown service" answer: a whole service
// missing is an address meant for the other one, not an older edge. An
// edge started with --admin-addr serves AdminService there only, and
// EdgeService only on its --grpc-addr.
func (c *command) wrongAddress(msg string) string {
	const unknown = "unknown service "
	switch {
	case strings.Contains(msg, unknown+edgev1.AdminService_ServiceDesc.ServiceName):
		return fmt.Sprintf("%s does not serve the edge's admin service (status, dead letters). "+
			"An edge started with --admin-addr serves it on that address only: pass the same address "+
			"to chasqui with --admin-addr (%s)", c.o.adminAddr, config.PrefixedEnvName(EnvPrefix, "admin-addr"))
	case strings.Contains(msg, unknown+edgev1.EdgeService_ServiceDesc.ServiceName):
		return fmt.Sprintf("%s does not serve the edge service (get, watch, submit); is it the edge's --admin-addr? "+
			"Pass the edge's --grpc-addr to chasqui with --addr (%s)", c.o.addr, config.PrefixedEnvName(EnvPrefix, "addr"))
	}
	return ""
}

func (c *command) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.env.Stdout, string(b))
	return err
}

func (c *command) table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *command) status(ctx context.Context) error {
	a, err := c.admin()
	if err != nil {
		return err
	}
	s, err := a.GetStatus(ctx, &edgev1.GetStatusRequest{})
	if err != nil {
		return err
	}
	if c.o.json {
		return c.printJSON(s)
	}
	limit := "unlimited"
	if s.QueueLimitBytes > 0 {
		limit = fmt.Sprintf("%d (%.1f%% used)", s.QueueLimitBytes, 100*float64(s.QueueBytes)/float64(s.QueueLimitBytes))
	}
	rows := [][]string{
		{"edge", s.EdgeId + "  (epoch " + s.Epoch + ")"},
		{"queue", fmt.Sprintf("%d transactions, %d bytes, limit %s", s.QueueCount, s.QueueBytes, limit)},
		{"oldest pending", fmt.Sprintf("%s (%.1f s ago)", ts(s.OldestPendingAcceptedAt), s.OldestPendingAgeSeconds)},
		{"accepted / committed through", fmt.Sprintf("seq %d / seq %d", s.LastAcceptedSeq, s.CommittedThroughSeq)},
		{"forwarder", s.ForwarderState + errSuffix(s)},
		{"central link", centralLink(s)},
		{"last commit", ts(s.LastCommitAt)},
		{"commit rate", fmt.Sprintf("%.1f tx/s", s.CommitRateTxPerSecond)},
		{"dead letters", fmt.Sprint(s.DeadLetters)},
		{"central LSN", orDash(s.CentralLsn)},
		{"replica", fmt.Sprintf("%s, replay LSN %s, lag %d bytes / %.1f s", orDash(s.ReplicaState), orDash(s.ReplicaReplayLsn), s.ReplicaLagBytes, s.ReplicaLagSeconds)},
		{"disk free", fmt.Sprintf("%d bytes", s.DiskFreeBytes)},
	}
	return c.table("FIELD\tVALUE", rowsTab(rows))
}

// centralLink is the link probe's view of central, with central's last
// answer.
func centralLink(s *edgev1.GetStatusResponse) string {
	if s.CentralLink == "" {
		return "-"
	}
	return s.CentralLink + " (last answer " + ts(s.CentralLastAnswerAt) + ")"
}

// errSuffix is the forwarder's last error with its age, marked as past
// once a commit followed it: an old error must not read as current.
func errSuffix(s *edgev1.GetStatusResponse) string {
	e := s.ForwarderLastError
	if e == "" {
		return ""
	}
	var when []string
	if s.ForwarderLastErrorAt != nil {
		when = append(when, age(s.ForwarderLastErrorAgeSeconds)+" ago")
	}
	if s.ForwarderLastErrorPast {
		when = append(when, "before the last commit")
	}
	if len(when) == 0 {
		return " (last error: " + e + ")"
	}
	return " (last error (" + strings.Join(when, ", ") + "): " + e + ")"
}

// age is a duration in seconds, rounded for reading (1.2s, 2m3s, 4h5m).
func age(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func rowsTab(rows [][]string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = []string{r[0], r[1]}
	}
	return out
}

func oneID(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usageError("%s takes exactly one transaction id", what)
	}
	if _, err := uuid.Parse(args[0]); err != nil {
		return "", usageError("%q is not a transaction id (UUID)", args[0])
	}
	return args[0], nil
}

func txRow(t *edgev1.TransactionStatus) []string {
	reason := t.RejectReason
	if t.Sqlstate != "" {
		reason += " [" + t.Sqlstate + "]"
	}
	return []string{t.TransactionId, fmt.Sprint(t.Seq), strings.TrimPrefix(t.State.String(), "TRANSACTION_STATE_"),
		ts(t.AcceptedAt), orDash(t.CommitLsn), orDash(reason)}
}

const txHeader = "TRANSACTION\tSEQ\tSTATE\tACCEPTED\tCOMMIT LSN\tREASON"

func (c *command) get(ctx context.Context, args []string) error {
	id, err := oneID(args, "get")
	if err != nil {
		return err
	}
	e, err := c.edge()
	if err != nil {
		return err
	}
	r, err := e.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: id})
	if err != nil {
		return err
	}
	if c.o.json {
		return c.printJSON(r.Transaction)
	}
	return c.table(txHeader, [][]string{txRow(r.Transaction)})
}

func (c *command) watch(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			return usageError("%q is not a transaction id (UUID)", id)
		}
	}
	e, err := c.edge()
	if err != nil {
		return err
	}
	stream, err := e.WatchTransactions(ctx, &edgev1.WatchTransactionsRequest{TransactionIds: ids})
	if err != nil {
		return err
	}
	if !c.o.json {
		fmt.Fprintln(c.env.Stdout, "CHANGE  "+strings.ReplaceAll(txHeader, "\t", "  "))
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil // the edge ended the stream, or the operator pressed Ctrl-C
		}
		if err != nil {
			return err
		}
		if c.o.json {
			b, err := protojson.Marshal(m)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.env.Stdout, string(b))
			continue
		}
		fmt.Fprintf(c.env.Stdout, "%d  %s\n", m.Change, strings.Join(txRow(m.Transaction), "  "))
	}
}

// readInput reads a file, or stdin for "-".
func (c *command) readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(c.env.Stdin)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError("%v", err)
	}
	return b, nil
}

// parseSubmission accepts a SubmitRequest, a single Transaction, or rows
// (parseRows). A transaction without an id gets a UUIDv7 here, before the
// first attempt, so the client's retries can never apply it twice.
func parseSubmission(b []byte) (*edgev1.SubmitRequest, error) {
	req := &edgev1.SubmitRequest{}
	if err := protojson.Unmarshal(b, req); err != nil || len(req.Transactions) == 0 {
		tx := &opsv1.Transaction{}
		if err2 := protojson.Unmarshal(b, tx); err2 != nil {
			rows, ok, err3 := parseRows(b)
			if err3 != nil {
				return nil, err3
			}
			if !ok {
				if err == nil {
					err = err2
				}
				return nil, usageError("not a SubmitRequest, a Transaction nor rows in protobuf JSON: %v", err)
			}
			tx = rows
		}
		req = &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}}
	}
	for _, tx := range req.Transactions {
		if tx.Id == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, err
			}
			tx.Id = id.String()
		}
	}
	return req, nil
}

func (c *command) submit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	file := fs.String("f", "", "file with a SubmitRequest or Transaction in protobuf JSON (- for stdin)")
	if err := fs.Parse(args); err != nil {
		return usageError("%v", err)
	}
	if *file == "" {
		return usageError("submit needs -f FILE")
	}
	b, err := c.readInput(*file)
	if err != nil {
		return err
	}
	req, err := parseSubmission(b)
	if err != nil {
		return err
	}
	e, err := c.edge()
	if err != nil {
		return err
	}
	resp, err := e.Submit(ctx, req)
	if err != nil {
		return err
	}
	if c.o.json {
		return c.printJSON(resp)
	}
	rows := make([][]string, 0, len(resp.Results))
	for _, r := range resp.Results {
		rows = append(rows, []string{r.TransactionId, fmt.Sprint(r.Seq), strings.TrimPrefix(r.State.String(), "TRANSACTION_STATE_"),
			ts(r.AcceptedAt), fmt.Sprint(r.Duplicate), strings.Join(r.RecordIds, ",")})
	}
	return c.table("TRANSACTION\tSEQ\tSTATE\tACCEPTED\tDUPLICATE\tRECORDS", rows)
}

func (c *command) deadLetters(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("deadletters needs list, show, retry or discard")
	}
	a, err := c.admin()
	if err != nil {
		return err
	}
	switch args[0] {
	case "list", "ls":
		return c.listDeadLetters(ctx, a)
	case "show":
		return c.showDeadLetter(ctx, a, args)
	case "retry":
		return c.retryDeadLetter(ctx, a, args)
	case "discard", "rm":
		id, err := oneID(args[1:], "deadletters discard")
		if err != nil {
			return err
		}
		if _, err := a.DiscardDeadLetter(ctx, &edgev1.DiscardDeadLetterRequest{TransactionId: id}); err != nil {
			return err
		}
		fmt.Fprintf(c.env.Stdout, "discarded %s\n", id)
		return nil
	default:
		return usageError("unknown deadletters command %q", args[0])
	}
}

// listDeadLetters prints every dead letter, following the pages to the end.
func (c *command) listDeadLetters(ctx context.Context, a edgev1.AdminServiceClient) error {
	var all []*edgev1.DeadLetter
	token := ""
	for {
		r, err := a.ListDeadLetters(ctx, &edgev1.ListDeadLettersRequest{PageSize: 500, PageToken: token})
		if err != nil {
			return err
		}
		all = append(all, r.DeadLetters...)
		if token = r.NextPageToken; token == "" {
			break
		}
	}
	if c.o.json {
		return c.printJSON(&edgev1.ListDeadLettersResponse{DeadLetters: all})
	}
	rows := make([][]string, 0, len(all))
	for _, d := range all {
		rows = append(rows, []string{d.GetTransaction().GetId(), fmt.Sprint(d.GetTransaction().GetSeq()),
			ts(d.RejectedAt), orDash(d.Sqlstate), d.Reason, mutationSummary(d.GetTransaction())})
	}
	return c.table("TRANSACTION\tSEQ\tREJECTED\tSQLSTATE\tREASON\tWRITES", rows)
}

// showDeadLetter prints one dead letter; --json may follow the id too, as
// the edited-retry recipe writes it.
func (c *command) showDeadLetter(ctx context.Context, a edgev1.AdminServiceClient, args []string) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	fs.BoolVar(&c.o.json, "json", c.o.json, "print protobuf JSON, to edit and give to retry -f")
	if len(args) < 2 {
		return usageError("deadletters show takes a transaction id")
	}
	if err := fs.Parse(args[2:]); err != nil {
		return usageError("%v", err)
	}
	id, err := oneID(args[1:2], "deadletters show")
	if err != nil {
		return err
	}
	r, err := a.GetDeadLetter(ctx, &edgev1.GetDeadLetterRequest{TransactionId: id})
	if err != nil {
		return err
	}
	if c.o.json {
		return c.printJSON(r.DeadLetter)
	}
	return c.printDeadLetter(r.DeadLetter)
}

// retryDeadLetter re-enqueues a dead letter as it was, as edited in a file
// (-f), or with --set/--unset edits applied to the stored transaction.
func (c *command) retryDeadLetter(ctx context.Context, a edgev1.AdminServiceClient, args []string) error {
	fs := flag.NewFlagSet("retry", flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	file, es := retryFlags(fs)
	if len(args) < 2 {
		return usageError("deadletters retry takes a transaction id")
	}
	if err := fs.Parse(args[2:]); err != nil {
		return usageError("%v", err)
	}
	id, err := oneID(args[1:2], "deadletters retry")
	if err != nil {
		return err
	}
	req := &edgev1.RetryDeadLetterRequest{TransactionId: id}
	if *file != "" {
		b, err := c.readInput(*file)
		if err != nil {
			return err
		}
		tx := &opsv1.Transaction{}
		if err := protojson.Unmarshal(b, tx); err != nil {
			return usageError("edited transaction: %v", err)
		}
		req.Edited = tx
	}
	if len(es.list) > 0 {
		if *file != "" {
			return usageError("deadletters retry takes -f or --set/--unset, not both")
		}
		d, err := a.GetDeadLetter(ctx, &edgev1.GetDeadLetterRequest{TransactionId: id})
		if err != nil {
			return err
		}
		if req.Edited, err = applyEdits(d.GetDeadLetter().GetTransaction(), es.list); err != nil {
			return err
		}
	}
	r, err := a.RetryDeadLetter(ctx, req)
	if err != nil {
		return err
	}
	if c.o.json {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.env.Stdout, "re-enqueued %s as seq %d\n", r.Result.GetTransactionId(), r.Result.GetSeq())
	return nil
}
