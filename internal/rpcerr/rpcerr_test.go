package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/logging/logtest"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/rpcmeta"
	"github.com/chasqui/chasqui/internal/validate"
)

// Each shared class maps to the code docs/design.md ("Wire contract")
// lists, however deeply the service wrapped it.
func TestSharedClasses(t *testing.T) {
	t.Parallel()
	bad := &validate.Error{Violations: []validate.Violation{
		{Field: "transactions[0].id", Description: "is required (a UUIDv7)"},
		{Field: "transactions[1].id", Description: "is required (a UUIDv7)"},
	}}
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
	}{
		{"validation", fmt.Errorf("submit: %w", bad), codes.InvalidArgument},
		{"canceled", fmt.Errorf("store: commit: %w", context.Canceled), codes.Canceled},
		{"deadline", fmt.Errorf("store: commit: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := status.Convert(rpcerr.Shared(tc.err))
			require.Equal(t, tc.code, st.Code(), "%v", tc.err)
			require.NotContains(t, st.Message(), "store:", "the service's wrapping reaches the client")
		})
	}
}

// A validation error names the first bad field in its message and every
// one in a google.rpc.BadRequest detail, for clients to show.
func TestSharedValidationNamesFields(t *testing.T) {
	t.Parallel()
	bad := &validate.Error{Violations: []validate.Violation{
		{Field: "transactions[0].id", Description: "is required (a UUIDv7)"},
		{Field: "transactions[1].mutations", Description: "a transaction needs at least one mutation"},
	}}
	st := status.Convert(rpcerr.Shared(fmt.Errorf("commit: %w", bad)))
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Equal(t, "transactions[0].id: is required (a UUIDv7) (and 1 more)", st.Message())
	require.Len(t, st.Details(), 1)
	br, ok := st.Details()[0].(*errdetails.BadRequest)
	require.True(t, ok, "detail is %T", st.Details()[0])
	var fields []string
	for _, v := range br.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	require.Equal(t, []string{"transactions[0].id", "transactions[1].mutations"}, fields)
}

// What is not a shared class is left to the service's own mapper.
func TestSharedLeavesOthers(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		errors.New("queue full"),
		status.Error(codes.Unavailable, "database unavailable"),
		fmt.Errorf("wrapped: %w", errors.New("not found")),
	} {
		require.NoError(t, rpcerr.Shared(err), "%v", err)
	}
}

// An unknown error answers INTERNAL with a fixed message; its cause goes
// to the log at ERROR with the request id the client was given.
func TestInternalLogsCauseNotClient(t *testing.T) {
	t.Parallel()
	var buf logtest.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(rpcmeta.RequestIDKey, "req-42"))

	st := status.Convert(rpcerr.Internal(ctx, log, errors.New("decoding row 7: secret detail")))
	require.Equal(t, codes.Internal, st.Code())
	require.Equal(t, rpcerr.InternalMessage, st.Message())

	lines, err := buf.JSONLines()
	require.NoError(t, err)
	require.Len(t, lines, 1)
	require.Equal(t, "ERROR", lines[0]["level"])
	require.Equal(t, "decoding row 7: secret detail", lines[0]["error"])
	require.Equal(t, "req-42", lines[0]["request_id"])
}
