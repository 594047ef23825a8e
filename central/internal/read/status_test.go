package read

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/chasqui/chasqui/internal/records"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/validate"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// An error toStatus does not know is INTERNAL, as IngestService answers,
// with its details in the log only; PostgreSQL out of reach is UNAVAILABLE.
func TestToStatusUnknownIsInternal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(nil, nil, slog.New(slog.DiscardHandler))

	err := s.toStatus(ctx, errors.New("decoding row 7: secret detail"))
	require.Equal(t, codes.Internal, status.Code(err))
	require.NotContains(t, status.Convert(err).Message(), "secret detail")

	// A real failed connection: nothing listens on port 1.
	_, connErr := pgx.Connect(ctx, "postgres://chasqui@127.0.0.1:1/chasqui?connect_timeout=5")
	require.Error(t, connErr)
	require.Equal(t, codes.Unavailable, status.Code(s.toStatus(ctx, connErr)), "%v", connErr)
}

// Each class of error ReadService answers maps to its documented code
// (docs/design.md, "Wire contract"), whatever wraps it; the shared classes
// and unknown errors as IngestService answers them (both on internal/rpcerr).
func TestToStatusClasses(t *testing.T) {
	t.Parallel()
	s := &Service{logger: slog.New(slog.DiscardHandler)}
	bad := &validate.Error{Violations: []validate.Violation{{Field: "ids", Description: "more ids than page_size"}}}
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string // a part of the message, when the client needs it
	}{
		{fmt.Errorf("list: %w", bad), codes.InvalidArgument, "ids"},
		{fmt.Errorf("get: %w", records.ErrNotFound), codes.NotFound, "not found"},
		{fmt.Errorf("get: %w", context.Canceled), codes.Canceled, ""},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		{errors.New("scanning: secret detail"), codes.Internal, rpcerr.InternalMessage},
	} {
		st := status.Convert(s.toStatus(context.Background(), tc.err))
		require.Equal(t, tc.code, st.Code(), "%v", tc.err)
		require.Contains(t, st.Message(), tc.msg, "%v", tc.err)
		require.NotContains(t, st.Message(), "secret", "%v", tc.err)
	}
}
