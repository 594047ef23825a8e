package e2e

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/tmpfstest"
)

// submitCode submits one fresh transaction, recording it in h, and returns
// its status code and id.
func submitCode(t *testing.T, s *Stack, h *History) (codes.Code, string) {
	t.Helper()
	req := NewObservationTx("E2E", "probe")
	id := req.Transactions[0].Id
	h.Written(id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Client.Submit(ctx, req)
	if err == nil && len(resp.GetResults()) == 1 {
		h.Acked(Ack{TxID: id, EdgeID: s.EdgeID, Seq: resp.GetResults()[0].GetSeq(), ObsRows: 1})
	} else if err != nil {
		h.Failed(id, err)
	}
	return status.Code(err), id
}

// Disk full under the edge: a real (tmpfs) filesystem filled by another
// file below the edge's free-space reserve. Clients get RESOURCE_EXHAUSTED,
// nothing refused is stored, the edge does not die (no SIGBUS from Badger's
// mmap), the store reopens intact after kill -9, and writes resume when
// space returns; every acknowledged transaction then reaches PostgreSQL
// exactly once.
func TestFaultDiskFull(t *testing.T) {
	mnt := tmpfstest.Mount(t, "320m")
	f := startFaultRun(t, StackOptions{DataDir: filepath.Join(mnt, "edge-data")})
	s := f.s
	s.Proxy.Down() // the backlog stays on the edge's disk
	f.waitAcks(500)

	const reserve = 160 << 20 // the edge's default --disk-reserve
	filler := filepath.Join(mnt, "filler")
	fill := func() {
		free := tmpfstest.Free(t, mnt)
		require.Greater(t, free, uint64(reserve/2), "room to fill")
		fd, err := os.Create(filler)
		require.NoError(t, err)
		require.NoError(t, syscall.Fallocate(int(fd.Fd()), 0, 0, int64(free-reserve/2)))
		require.NoError(t, fd.Close())
	}
	var refused []string
	f.window("disk filled below the reserve", func() {
		fill()
		t.Logf("free after filling: %d MiB (reserve %d MiB)", tmpfstest.Free(t, mnt)>>20, reserve>>20)
		Eventually(t, time.Minute, "the edge refuses writes with RESOURCE_EXHAUSTED", func() bool {
			code, id := submitCode(t, s, f.h)
			if code == codes.ResourceExhausted {
				refused = append(refused, id)
				return true
			}
			return false
		})
		for range 5 {
			code, id := submitCode(t, s, f.h)
			require.Equal(t, codes.ResourceExhausted, code)
			refused = append(refused, id)
		}
		require.True(t, s.Edge.Running(), "the edge survives a full disk")
		// kill -9 and reopen on the full disk: the store opens intact.
		killRestartEdge(t, s)
		code, id := submitCode(t, s, f.h)
		require.Equal(t, codes.ResourceExhausted, code, "still refused after reopening")
		refused = append(refused, id)
		st := f.status()
		t.Logf("edge status on the full disk: queue_count=%d last_accepted=%d", st.GetQueueCount(), st.GetLastAcceptedSeq())
		require.NoError(t, os.Remove(filler))
	})
	Eventually(t, time.Minute, "writes resume when space returns", func() bool {
		code, _ := submitCode(t, s, f.h)
		return code == codes.OK
	})
	s.Proxy.Up()
	f.finish()
	// Nothing refused was stored.
	for _, id := range refused {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.Client.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: id})
		cancel()
		require.Equal(t, codes.NotFound, status.Code(err), "refused tx %s unknown to the edge", id)
		require.Zero(t, countRows(t, s, `SELECT count(*) FROM chasqui.applied_transactions WHERE tx_id = $1`, id))
	}
	require.True(t, s.Edge.Running())
}

// The queue limit: with the link down, the edge fills its configured queue
// size and answers RESOURCE_EXHAUSTED; when the link returns and the queue
// drains, writes are accepted again.
func TestFaultQueueFull(t *testing.T) {
	f := startFaultRun(t, StackOptions{EdgeArgs: []string{"--queue-max-bytes", "262144"}})
	s := f.s
	s.Proxy.Down()
	var refusedAt int
	Eventually(t, 2*time.Minute, "the queue limit is reached", func() bool {
		code, _ := submitCode(t, s, f.h)
		refusedAt = f.load.Acked()
		return code == codes.ResourceExhausted
	})
	t.Logf("queue full after %d acknowledged writes", refusedAt)
	s.Proxy.Up()
	Eventually(t, 2*time.Minute, "writes accepted again once the queue drains", func() bool {
		code, _ := submitCode(t, s, f.h)
		return code == codes.OK
	})
	f.finish()
}
