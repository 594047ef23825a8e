// Command chasqui-sim is a small instrument simulator for `make run`: it
// writes the stream an observatory's instruments would — observations
// starting (with the instrument's configuration), raw data files registered
// while they run, and each observation finishing later (mostly COMPLETED,
// sometimes FAILED or ABORTED) — through the edge's gRPC API with the same
// retry policy the instrument client uses.
//
// With --ops-rows (the default) it also writes rows of the site's own
// operations database `make run` creates (examples/ops-schema.sql): an
// observation unit per observation (inserted with its first raw data
// package, parent before child in one transaction, and updated when the
// observation finishes) and a raw data package per file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/config"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/logging"
	"github.com/chasqui/chasqui/internal/tlsconfig"
	"github.com/chasqui/chasqui/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "chasqui-sim:", err)
		os.Exit(1)
	}
}

type sim struct {
	edge        edgev1.EdgeServiceClient
	log         *slog.Logger
	rnd         *rand.Rand
	instruments []string
	files       int
	obsLength   time.Duration
	opsRows     bool
}

// The ops schema's tables (examples/ops-schema.sql).
const (
	unitTable    = "ops.observation_unit"
	packageTable = "ops.raw_data_package"
)

func realMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chasqui-sim", flag.ContinueOnError)
	addr := fs.String("edge-addr", "127.0.0.1:7444", "edge gRPC address")
	interval := fs.Duration("interval", 2*time.Second, "time between observation starts")
	obsLength := fs.Duration("obs-length", 6*time.Second, "how long an observation runs")
	files := fs.Int("files", 3, "raw data files per observation")
	instruments := fs.String("instruments", "CHAI,PrimeCam,Mod-Cam", "comma-separated instrument names")
	count := fs.Int("count", 0, "stop after this many observations (0: run until interrupted)")
	opsRows := fs.Bool("ops-rows", true, "also write rows of ops.observation_unit and ops.raw_data_package (examples/ops-schema.sql)")
	var tlsFiles tlsconfig.Files
	config.AddClientTLS(fs, &tlsFiles, "CA that signs the edge's certificate (TLS when set; plaintext otherwise)")
	common := config.AddCommon(fs)
	fs.Usage = config.Usage(fs, "chasqui-sim: writes a realistic stream of operations records to an edge")
	if err := config.Parse(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if common.Version {
		fmt.Println("chasqui-sim", version.String())
		return nil
	}
	log, err := logging.New(os.Stderr, common.LogLevel)
	if err != nil {
		return err
	}
	opts := grpcclient.Options{Logger: log}
	if tlsFiles.CA != "" {
		if opts.TLS, err = tlsconfig.Client(tlsFiles); err != nil {
			return err
		}
	}
	conn, err := grpcclient.Dial(*addr, opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	s := &sim{
		edge: edgev1.NewEdgeServiceClient(conn), log: log,
		rnd:         rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		instruments: strings.Split(*instruments, ","), files: *files, obsLength: *obsLength, opsRows: *opsRows,
	}
	log.Info("simulating instruments", "edge", *addr, "instruments", s.instruments)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	done := make(chan struct{}, 64)
	running := 0
	for n := 0; *count == 0 || n < *count; n++ {
		running++
		go func() { s.observe(ctx); done <- struct{}{} }()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			running--
			<-tick.C
		case <-tick.C:
		}
	}
	for ; running > 0; running-- {
		<-done
	}
	return nil
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func (s *sim) submit(ctx context.Context, what string, muts ...*opsv1.Mutation) bool {
	// The id is fixed before the first attempt, so a retry can never apply it twice.
	tx := &opsv1.Transaction{Id: newID(), Mutations: muts}
	resp, err := s.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("submit failed", "what", what, "transaction_id", tx.Id, "error", err)
		}
		return false
	}
	s.log.Info("submitted", "what", what, "transaction_id", tx.Id, "seq", resp.Results[0].GetSeq())
	return true
}

// observe runs one observation: start with its configuration, files while
// it runs, then the finish.
func (s *sim) observe(ctx context.Context) {
	inst := s.instruments[s.rnd.IntN(len(s.instruments))]
	obsID := newID()
	start := time.Now()
	attrs, _ := structpb.NewStruct(map[string]any{
		"pwv_mm": 0.3 + s.rnd.Float64(), "elevation_deg": 30 + 60*s.rnd.Float64(), "operator": "sim",
	})
	cfg, _ := structpb.NewStruct(map[string]any{
		"lo_freq_ghz": 460 + s.rnd.Float64()*350, "integration_s": 0.5, "pixels": 64,
	})
	source := sources[s.rnd.IntN(len(sources))]
	unitName := fmt.Sprintf("ou-%s-%03d", start.UTC().Format("2006-01-02"), s.rnd.IntN(1000))
	muts := []*opsv1.Mutation{
		{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
			Id: obsID, Instrument: inst, Source: source, ObsUnit: unitName,
			Status: opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING, StartTime: timestamppb.New(start),
			Attributes: attrs,
		}}},
		{Kind: &opsv1.Mutation_InstrumentConfig{InstrumentConfig: &opsv1.InstrumentConfig{
			Id: newID(), Instrument: inst, ObservationId: obsID, RecordedAt: timestamppb.New(start), Config: cfg,
		}}},
	}
	unitID := newID()
	if s.opsRows {
		// The unit opens with a pointing scan: its package travels in the
		// unit's own transaction, after it (the foreign key's order).
		muts = append(muts,
			row(unitTable, opsv1.RowOp_ROW_OP_INSERT, map[string]any{
				"id": unitID, "name": unitName, "instrument": inst, "status": "RUNNING",
				"started_at": start.UTC().Format(time.RFC3339Nano),
				// numeric(6,3): exact, so as a string.
				"pwv_mm":     fmt.Sprintf("%.3f", attrs.GetFields()["pwv_mm"].GetNumberValue()),
				"tags":       []any{"science", strings.ToLower(inst)},
				"parameters": map[string]any{"source": source, "config": cfg.AsMap()},
			}),
			s.packageRow(unitID, inst, "pointing"))
	}
	if !s.submit(ctx, "start observation", muts...) {
		return
	}
	step := s.obsLength / time.Duration(s.files+1)
	for i := range s.files {
		if !sleep(ctx, step) {
			return
		}
		muts := []*opsv1.Mutation{{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{
			Id: newID(), ObservationId: obsID,
			Path:      fmt.Sprintf("/data/%s/%s/scan-%03d.fits", strings.ToLower(inst), obsID, i),
			SizeBytes: 1<<20 + s.rnd.Int64N(512<<20),
			Checksum:  fmt.Sprintf("sha256:%064x", s.rnd.Uint64()),
			CreatedAt: timestamppb.Now(),
		}}}}
		if s.opsRows {
			muts = append(muts, s.packageRow(unitID, inst, fmt.Sprintf("scan-%03d", i)))
		}
		s.submit(ctx, "register raw file", muts...)
	}
	if !sleep(ctx, step) {
		return
	}
	final := opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED
	switch r := s.rnd.IntN(20); {
	case r == 0:
		final = opsv1.ObservationStatus_OBSERVATION_STATUS_FAILED
	case r == 1:
		final = opsv1.ObservationStatus_OBSERVATION_STATUS_ABORTED
	}
	end := time.Now()
	muts = []*opsv1.Mutation{{Kind: &opsv1.Mutation_ObservationUpdate{ObservationUpdate: &opsv1.ObservationUpdate{
		Id: obsID, Status: &final, EndTime: timestamppb.New(end),
	}}}}
	if s.opsRows {
		// UPDATE carries the key and the changed columns only.
		muts = append(muts, row(unitTable, opsv1.RowOp_ROW_OP_UPDATE, map[string]any{
			"id": unitID, "status": strings.TrimPrefix(final.String(), "OBSERVATION_STATUS_"),
			"ended_at": end.UTC().Format(time.RFC3339Nano),
		}))
	}
	s.submit(ctx, "finish observation", muts...)
}

// packageRow is an INSERT of a raw data package of unit.
func (s *sim) packageRow(unitID, inst, scan string) *opsv1.Mutation {
	id := newID()
	return row(packageTable, opsv1.RowOp_ROW_OP_INSERT, map[string]any{
		"id": id, "unit_id": unitID,
		"path": fmt.Sprintf("/data/%s/%s/%s.tar", strings.ToLower(inst), unitID, scan),
		// bigint: a string, exact whatever its size.
		"size_bytes": strconv.FormatInt(1<<20+s.rnd.Int64N(4<<30), 10),
		"checksum":   fmt.Sprintf("sha256:%064x", s.rnd.Uint64()),
		"created_at": time.Now().UTC().Format(time.RFC3339Nano),
		"metadata":   map[string]any{"scan": scan},
	})
}

// row is a row mutation of table. The values are the simulator's own
// literals, which structpb always takes.
func row(table string, op opsv1.RowOp, values map[string]any) *opsv1.Mutation {
	v, err := structpb.NewStruct(values)
	if err != nil {
		panic(fmt.Sprintf("chasqui-sim: row of %s: %v", table, err))
	}
	return &opsv1.Mutation{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{Table: table, Op: op, Values: v}}}
}

var sources = []string{"Orion-KL", "Sgr B2", "W51", "NGC 253", "M82", "Cen A", "IRC+10216"}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
