// Package client is the Go client instrument processes use to write to
// their edge. It dials with the project's retry policy (internal/grpcclient:
// a few attempts with jittered backoff, a per-attempt timeout, a client-wide
// retry budget, wait-for-ready with a 100 ms reconnect backoff), retrying
// UNAVAILABLE and, a few times, RESOURCE_EXHAUSTED, so an edge restart or a
// link outage of about a second reaches the caller as latency, not as an
// error. Every transaction id (and every empty record id) is generated
// before the first attempt, so a retried call is answered with the first
// answer and never stores anything twice.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
)

// Option configures Dial.
type Option func(*grpcclient.Options, *[]grpc.DialOption)

// WithLogger logs every attempt (debug) and every failed one. Default: no logs.
func WithLogger(l *slog.Logger) Option {
	return func(o *grpcclient.Options, _ *[]grpc.DialOption) { o.Logger = l }
}

// WithTLS dials with TLS (mutual, when cfg carries a certificate). Default:
// plaintext.
func WithTLS(cfg *tls.Config) Option {
	return func(o *grpcclient.Options, _ *[]grpc.DialOption) { o.TLS = cfg }
}

// WithMaxAttempts sets the attempts per call, the first included. Default 5.
func WithMaxAttempts(n uint) Option {
	return func(o *grpcclient.Options, _ *[]grpc.DialOption) { o.MaxAttempts = n }
}

// WithPerAttemptTimeout bounds one attempt, the wait for a connection
// included. Default 2 s.
func WithPerAttemptTimeout(d time.Duration) Option {
	return func(o *grpcclient.Options, _ *[]grpc.DialOption) { o.PerAttemptTimeout = d }
}

// WithDialOptions appends gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(_ *grpcclient.Options, d *[]grpc.DialOption) { *d = append(*d, opts...) }
}

// Client writes to one edge. It is safe for concurrent use.
type Client struct {
	conn  *grpc.ClientConn
	edge  edgev1.EdgeServiceClient
	admin edgev1.AdminServiceClient
}

// Dial creates a client of the edge at target ("host:port"). It does not
// wait for the edge: calls wait for the connection (each attempt up to its
// timeout). ctx is reserved for future dial-time work.
func Dial(_ context.Context, target string, opts ...Option) (*Client, error) {
	o := grpcclient.Options{
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxAttempts: 5,
		// An instrument may retry a full queue or disk a few times (the
		// edge may be draining); then the error is the caller's to handle.
		RetryCodes: []codes.Code{codes.Unavailable, codes.ResourceExhausted},
	}
	var extra []grpc.DialOption
	for _, opt := range opts {
		opt(&o, &extra)
	}
	conn, err := grpcclient.Dial(target, o, extra...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, edge: edgev1.NewEdgeServiceClient(conn), admin: edgev1.NewAdminServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection (for other services of the edge).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Admin is the edge's AdminService on the same connection.
func (c *Client) Admin() edgev1.AdminServiceClient { return c.admin }

// NewID returns a fresh UUIDv7 in canonical text form.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Tx builds a transaction of muts with a fresh id.
func Tx(muts ...*opsv1.Mutation) *opsv1.Transaction {
	return &opsv1.Transaction{Id: NewID(), Mutations: muts}
}

// Submit stores transactions at the edge, atomically each, and returns one
// result per transaction. Empty transaction and record ids are filled in
// here, before the first attempt, so retries are safe.
func (c *Client) Submit(ctx context.Context, txs ...*opsv1.Transaction) ([]*edgev1.SubmitResult, error) {
	if len(txs) == 0 {
		return nil, errors.New("client: Submit needs at least one transaction")
	}
	for _, tx := range txs {
		if tx.GetId() == "" {
			tx.Id = NewID()
		}
		for _, m := range tx.GetMutations() {
			fillID(m)
		}
	}
	resp, err := c.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: txs})
	if err != nil {
		return nil, err
	}
	return resp.GetResults(), nil
}

func (c *Client) submitOne(ctx context.Context, m *opsv1.Mutation) (*edgev1.SubmitResult, error) {
	res, err := c.Submit(ctx, Tx(m))
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// StartObservation records an observation as it starts: its id (filled in
// when empty), status RUNNING and start_time now unless set. The result's
// RecordIds[0] is the observation id.
func (c *Client) StartObservation(ctx context.Context, obs *opsv1.Observation) (*edgev1.SubmitResult, error) {
	if obs.GetStatus() == opsv1.ObservationStatus_OBSERVATION_STATUS_UNSPECIFIED {
		obs.Status = opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING
	}
	if obs.GetStartTime() == nil {
		obs.StartTime = timestamppb.Now()
	}
	return c.submitOne(ctx, &opsv1.Mutation{Kind: &opsv1.Mutation_Observation{Observation: obs}})
}

// FinishObservation updates an observation (u.Id required): status
// COMPLETED and end_time now unless set; attributes are merged.
func (c *Client) FinishObservation(ctx context.Context, u *opsv1.ObservationUpdate) (*edgev1.SubmitResult, error) {
	if u.Status == nil {
		done := opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED
		u.Status = &done
	}
	if u.GetEndTime() == nil {
		u.EndTime = timestamppb.Now()
	}
	return c.submitOne(ctx, &opsv1.Mutation{Kind: &opsv1.Mutation_ObservationUpdate{ObservationUpdate: u}})
}

// RegisterRawFile records a raw data file's metadata (created_at now unless set).
func (c *Client) RegisterRawFile(ctx context.Context, f *opsv1.RawDataFile) (*edgev1.SubmitResult, error) {
	if f.GetCreatedAt() == nil {
		f.CreatedAt = timestamppb.Now()
	}
	return c.submitOne(ctx, &opsv1.Mutation{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: f}})
}

// RecordConfig records an instrument configuration (recorded_at now unless set).
func (c *Client) RecordConfig(ctx context.Context, ic *opsv1.InstrumentConfig) (*edgev1.SubmitResult, error) {
	if ic.GetRecordedAt() == nil {
		ic.RecordedAt = timestamppb.Now()
	}
	return c.submitOne(ctx, &opsv1.Mutation{Kind: &opsv1.Mutation_InstrumentConfig{InstrumentConfig: ic}})
}

// GetTransaction tells how far a transaction has come (NOT_FOUND when the
// edge does not know it).
func (c *Client) GetTransaction(ctx context.Context, id string) (*edgev1.TransactionStatus, error) {
	resp, err := c.edge.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: id})
	if err != nil {
		return nil, err
	}
	return resp.GetTransaction(), nil
}

// fillID gives a new record an id (updates name an existing one).
func fillID(m *opsv1.Mutation) {
	switch k := m.GetKind().(type) {
	case *opsv1.Mutation_Observation:
		if k.Observation != nil && k.Observation.Id == "" {
			k.Observation.Id = NewID()
		}
	case *opsv1.Mutation_InstrumentConfig:
		if k.InstrumentConfig != nil && k.InstrumentConfig.Id == "" {
			k.InstrumentConfig.Id = NewID()
		}
	case *opsv1.Mutation_RawDataFile:
		if k.RawDataFile != nil && k.RawDataFile.Id == "" {
			k.RawDataFile.Id = NewID()
		}
	}
}
