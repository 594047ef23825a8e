package forward_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
)

// BenchmarkDrainSlowLinkSlowDisk models a backlog's drain over the
// design's 250 ms round trip with the queue's times per 4000-transaction
// batch measured on the WAN proxy (ApplyCommit 50 ms, Read 20 ms), by
// window. Its times are sleeps, not CPU, so a loaded machine measures the
// pipeline's shape rather than its own load: batches_per_s is what the
// round trip, the window and the sending loop allow. For the WAN lines of
// the bench on a quiet machine, see docs/performance.md.
//
//	go test -run '^$' -bench DrainSlowLinkSlowDisk -benchtime 1x ./internal/forward/
func BenchmarkDrainSlowLinkSlowDisk(b *testing.B) {
	const (
		rtt     = 250 * time.Millisecond
		apply   = 50 * time.Millisecond
		read    = 20 * time.Millisecond
		batches = 60
		perTx   = 10 // transactions per batch: their CPU stays negligible
	)
	for _, window := range []int{4, 8, 16} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			var elapsed time.Duration
			for b.Loop() {
				central := newFakeCentral()
				central.hook = func(ctx context.Context, _ *centralv1.CommitRequest) error {
					select {
					case <-time.After(rtt): // the round trip, as central's latency
					case <-ctx.Done():
					}
					return nil
				}
				store := newMemStore("e1")
				store.applyHook = func(queue.CommitResult) { time.Sleep(apply) } // the disk
				store.readHook = func() { time.Sleep(read) }                     // the disk
				store.append(batches*perTx, 0)
				t0 := time.Now()
				bn := start(b, serveCentral(b, central), forward.Config{MaxCount: perTx, Window: window, Linger: -1}, store)
				require.Eventually(b, func() bool { return store.CommittedThrough() == batches*perTx }, 5*time.Minute, poll, "drained")
				elapsed += time.Since(t0)
				bn.stop()
			}
			b.ReportMetric(float64(batches*b.N)/elapsed.Seconds(), "batches_per_s")
		})
	}
}
