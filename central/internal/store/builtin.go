package store

import (
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/internal/rows"
)

// builtin is how one kind of built-in record runs as rows of a chasqui
// table: its run identity and a new run for it.
type builtin struct {
	sig   string
	start func() *rowRun
}

func chasquiTable(name string, cols ...string) *catalog.Table {
	t := &catalog.Table{Name: rows.Table{Schema: "chasqui", Name: name}, Key: []string{"id"}, Columns: map[string]*catalog.Column{}}
	for _, c := range cols {
		t.Columns[c] = &catalog.Column{Name: c}
	}
	return t
}

func sorted(cols ...string) []string {
	c := slices.Clone(cols)
	slices.Sort(c)
	return c
}

var (
	observationCols = sorted("id", "instrument", "source", "obs_unit", "status", "start_time", "end_time", "attributes", "tx_id", "edge_id")
	updateCols      = sorted("id", "status", "end_time", "attributes")
	configCols      = sorted("id", "instrument", "observation_id", "recorded_at", "config", "tx_id", "edge_id")
	fileCols        = sorted("id", "observation_id", "path", "size_bytes", "checksum", "created_at", "tx_id", "edge_id")

	observationsTable = chasquiTable("observations", observationCols...)
	configsTable      = chasquiTable("instrument_configs", configCols...)
	filesTable        = chasquiTable("raw_data_files", fileCols...)

	builtinObservation = builtin{"\x00observation", func() *rowRun {
		return newRowRun(observationsTable, opsv1.RowOp_ROW_OP_INSERT, observationCols, "\x00observation")
	}}
	// An update sets what it carries: unset fields keep the stored value,
	// attributes merge (top-level keys replace).
	builtinUpdate = builtin{"\x00observation_update", func() *rowRun {
		r := newRowRun(observationsTable, opsv1.RowOp_ROW_OP_UPDATE, updateCols, "\x00observation_update")
		r.what = "observation"
		r.set = map[string]string{
			"status":     "COALESCE(src.status, dst.status)",
			"end_time":   "COALESCE(src.end_time, dst.end_time)",
			"attributes": "dst.attributes || src.attributes",
		}
		r.extraSet = []string{"updated_at = now()"}
		return r
	}}
	builtinConfig = builtin{"\x00instrument_config", func() *rowRun {
		return newRowRun(configsTable, opsv1.RowOp_ROW_OP_INSERT, configCols, "\x00instrument_config")
	}}
	// A file without created_at was created when central stored it.
	builtinFile = builtin{"\x00raw_data_file", func() *rowRun {
		r := newRowRun(filesTable, opsv1.RowOp_ROW_OP_INSERT, fileCols, "\x00raw_data_file")
		r.sel = map[string]string{"created_at": "COALESCE(r.created_at, now())"}
		return r
	}}
)

// builtinRow translates a built-in record into a row of its chasqui
// table: the run it belongs to, its key, and its values as JSON.
func builtinRow(m *opsv1.Mutation, txID uuid.UUID, edgeID string) (builtin, string, func([]byte) []byte) {
	tx := txID.String()
	switch k := m.GetKind().(type) {
	case *opsv1.Mutation_Observation:
		o := k.Observation
		return builtinObservation, o.GetId(), func(b []byte) []byte {
			var w object
			w.b = b
			w.str("id", o.GetId())
			w.str("instrument", o.GetInstrument())
			w.str("source", o.GetSource())
			w.str("obs_unit", o.GetObsUnit())
			w.str("status", statusText(o.GetStatus()))
			w.time("start_time", o.GetStartTime())
			w.time("end_time", o.GetEndTime())
			w.raw("attributes", JSON(o.GetAttributes()))
			w.str("tx_id", tx)
			w.str("edge_id", edgeID)
			return w.end()
		}
	case *opsv1.Mutation_ObservationUpdate:
		u := k.ObservationUpdate
		return builtinUpdate, u.GetId(), func(b []byte) []byte {
			var w object
			w.b = b
			w.str("id", u.GetId())
			if u.Status != nil {
				w.str("status", statusText(u.GetStatus()))
			} else {
				w.null("status")
			}
			w.time("end_time", u.GetEndTime())
			w.raw("attributes", JSON(u.GetAttributes()))
			return w.end()
		}
	case *opsv1.Mutation_InstrumentConfig:
		c := k.InstrumentConfig
		return builtinConfig, c.GetId(), func(b []byte) []byte {
			var w object
			w.b = b
			w.str("id", c.GetId())
			w.str("instrument", c.GetInstrument())
			if c.GetObservationId() != "" {
				w.str("observation_id", c.GetObservationId())
			} else {
				w.null("observation_id")
			}
			w.time("recorded_at", c.GetRecordedAt())
			w.raw("config", JSON(c.GetConfig()))
			w.str("tx_id", tx)
			w.str("edge_id", edgeID)
			return w.end()
		}
	case *opsv1.Mutation_RawDataFile:
		f := k.RawDataFile
		return builtinFile, f.GetId(), func(b []byte) []byte {
			var w object
			w.b = b
			w.str("id", f.GetId())
			w.str("observation_id", f.GetObservationId())
			w.str("path", f.GetPath())
			w.key("size_bytes")
			w.b = strconv.AppendInt(w.b, f.GetSizeBytes(), 10)
			w.str("checksum", f.GetChecksum())
			w.time("created_at", f.GetCreatedAt())
			w.str("tx_id", tx)
			w.str("edge_id", edgeID)
			return w.end()
		}
	}
	// Validation admits no other kind; an empty run would be a bug.
	panic("store: mutation of no known kind")
}

// object writes one JSON object.
type object struct {
	b []byte
	n int
}

func (w *object) key(k string) {
	if w.n == 0 {
		w.b = append(w.b, '{')
	} else {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = appendString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *object) str(k, v string) { w.key(k); w.b = appendString(w.b, v) }
func (w *object) null(k string)   { w.key(k); w.b = append(w.b, "null"...) }
func (w *object) raw(k, v string) { w.key(k); w.b = append(w.b, v...) }

// time writes a timestamp as PostgreSQL reads it, to the microsecond it
// keeps (truncated, as the binary encoding did); nil is null.
func (w *object) time(k string, ts *timestamppb.Timestamp) {
	if ts == nil {
		w.null(k)
		return
	}
	w.key(k)
	w.b = append(w.b, '"')
	w.b = ts.AsTime().Truncate(time.Microsecond).AppendFormat(w.b, "2006-01-02T15:04:05.999999Z07:00")
	w.b = append(w.b, '"')
}

func (w *object) end() []byte {
	if w.n == 0 {
		return append(w.b, '{', '}')
	}
	return append(w.b, '}')
}
