package read_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/read"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var template = pgtest.Template{Name: "central_read", Migrate: migrations.MigrateURL}

type bundle struct {
	store *store.Store
	svc   *read.Service
	seq   uint64
}

func setup(t *testing.T) *bundle {
	t.Helper()
	cfg, err := store.PoolConfig(pgtest.NewDatabase(t, template))
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &bundle{store: store.New(pool, store.Options{}), svc: read.New(pool, nil, logger)}
}

func (b *bundle) commit(t *testing.T, txs ...*opsv1.Transaction) {
	t.Helper()
	res, err := b.store.Commit(context.Background(), fixture.Request("site-1", "e1", b.seq+1, txs...))
	require.NoError(t, err)
	for _, r := range res.Txs {
		require.Equal(t, store.OutcomeApplied, r.Outcome, r.Reason)
	}
	b.seq += uint64(len(txs))
}

// obs is an observation starting at start+minutes.
func obs(id, instrument string, minutes int, st opsv1.ObservationStatus) *opsv1.Mutation {
	m := fixture.Observation(id)
	o := m.GetObservation()
	o.Instrument, o.Status = instrument, st
	o.StartTime = timestamppb.New(fixture.Start.Add(time.Duration(minutes) * time.Minute))
	return m
}

func TestGetObservationWithFilesAndConfigs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	id := fixture.ID()
	file, cfg := fixture.File(id, 1234), fixture.Config(id)
	b.commit(t, fixture.Tx(fixture.Observation(id), file, cfg, fixture.Config("")))
	end := fixture.Start.Add(time.Hour)
	b.commit(t, fixture.Tx(fixture.Finish(id, end, map[string]any{"quality": "good"})))

	res, err := b.svc.GetObservation(ctx, &centralv1.GetObservationRequest{Id: id})
	require.NoError(t, err)
	o := res.GetObservation().GetObservation()
	require.Equal(t, id, o.GetId())
	require.Equal(t, "CHAI", o.GetInstrument())
	require.Equal(t, "Orion-KL", o.GetSource())
	require.Equal(t, opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED, o.GetStatus())
	require.True(t, o.GetStartTime().AsTime().Equal(fixture.Start))
	require.True(t, o.GetEndTime().AsTime().Equal(end))
	require.Equal(t, "good", o.GetAttributes().GetFields()["quality"].GetStringValue())
	require.Equal(t, "low", o.GetAttributes().GetFields()["band"].GetStringValue(), "update merged the attributes")
	require.Len(t, res.GetObservation().GetFiles(), 1)
	f := res.GetObservation().GetFiles()[0]
	require.Equal(t, file.GetRawDataFile().GetId(), f.GetId())
	require.Equal(t, int64(1234), f.GetSizeBytes())
	require.Equal(t, file.GetRawDataFile().GetPath(), f.GetPath())
	require.Len(t, res.GetObservation().GetConfigs(), 1, "the config of no observation is not this one's")
	require.Equal(t, cfg.GetInstrumentConfig().GetId(), res.GetObservation().GetConfigs()[0].GetId())
	require.InDelta(t, 492.16, res.GetObservation().GetConfigs()[0].GetConfig().GetFields()["lo_ghz"].GetNumberValue(), 1e-9)

	_, err = b.svc.GetObservation(ctx, &centralv1.GetObservationRequest{Id: fixture.ID()})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = b.svc.GetObservation(ctx, &centralv1.GetObservationRequest{Id: "nope"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Equal(t, "id: must be a UUID", status.Convert(err).Message())
}

func TestListObservationsFiltersAndPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	running, completed := opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING, opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED
	var chai []string // CHAI observations in start order
	var txs []*opsv1.Transaction
	for i := range 25 {
		id := fixture.ID()
		inst, st := "CHAI", running
		if i%5 == 4 {
			inst = "HEMU"
		}
		if i%2 == 1 {
			st = completed
		}
		// Start times out of id order: the list follows start_time.
		txs = append(txs, fixture.Tx(obs(id, inst, 100-i, st)))
		if inst == "CHAI" {
			chai = append([]string{id}, chai...)
		}
	}
	b.commit(t, txs...)

	// Pages of 7 over the 20 CHAI observations: 7, 7, 6, then no token.
	var got []string
	tok := ""
	for page := 0; ; page++ {
		require.Less(t, page, 4)
		res, err := b.svc.ListObservations(ctx, &centralv1.ListObservationsRequest{Instrument: "CHAI", PageSize: 7, PageToken: tok})
		require.NoError(t, err)
		for _, r := range res.GetObservations() {
			got = append(got, r.GetObservation().GetId())
		}
		tok = res.GetNextPageToken()
		if tok == "" {
			require.Len(t, res.GetObservations(), 6)
			break
		}
		require.Len(t, res.GetObservations(), 7)
	}
	require.Equal(t, chai, got)

	res, err := b.svc.ListObservations(ctx, &centralv1.ListObservationsRequest{
		Instrument: "HEMU", Status: completed, ObsUnit: "ou-1",
	})
	require.NoError(t, err)
	require.Len(t, res.GetObservations(), 2) // i = 9, 19
	for _, r := range res.GetObservations() {
		require.Equal(t, completed, r.GetObservation().GetStatus())
	}

	// start_after inclusive, start_before exclusive: minutes 80..85 are i = 15..20.
	res, err = b.svc.ListObservations(ctx, &centralv1.ListObservationsRequest{
		StartAfter:  timestamppb.New(fixture.Start.Add(80 * time.Minute)),
		StartBefore: timestamppb.New(fixture.Start.Add(86 * time.Minute)),
	})
	require.NoError(t, err)
	require.Len(t, res.GetObservations(), 6)
	require.Empty(t, res.GetNextPageToken())

	res, err = b.svc.ListObservations(ctx, &centralv1.ListObservationsRequest{Ids: []string{chai[3], chai[1], fixture.ID()}})
	require.NoError(t, err)
	require.Len(t, res.GetObservations(), 2)
	require.Equal(t, chai[1], res.GetObservations()[0].GetObservation().GetId())
	require.Equal(t, chai[3], res.GetObservations()[1].GetObservation().GetId())
	_, err = b.svc.ListObservations(ctx, &centralv1.ListObservationsRequest{Ids: []string{"x"}})
	require.Equal(t, "ids[0]: must be a UUID", status.Convert(err).Message())

	res, err = b.svc.ListObservations(ctx, &centralv1.ListObservationsRequest{ObsUnit: "nope"})
	require.NoError(t, err)
	require.Empty(t, res.GetObservations())

	_, err = b.svc.ListObservations(ctx, &centralv1.ListObservationsRequest{PageToken: "garbage!"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "page_token")
}
