package read

import (
	"context"
	"errors"
	"log/slog"
	"testing"

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
