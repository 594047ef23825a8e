package forward_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/faultproxy"
	"github.com/chasqui/chasqui/edge/internal/forward"
)

// A link that is down longer than the per-attempt timeout makes the
// wait-for-ready attempts time out without sending anything: that says
// nothing about the batch's size, so batches are not split, and after
// the link comes back they go at full size. (A central that is genuinely
// slow still makes the forwarder split: TestTimeoutSplitsBatch.) The
// per-attempt timeout is a generous 1 s so that a loaded machine's slow
// answer after recovery does not split for a good reason.
func TestLinkDownDoesNotSplitBatches(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	proxy := faultproxy.New(t, serveCentral(t, central))
	proxy.Down()

	store := newMemStore("e1")
	store.append(64, 0)
	b := start(t, proxy.Addr(), forward.Config{
		MaxCount: 16, MaxAttempts: 2, AttemptTimeoutBase: time.Second, AttemptFloorBandwidth: 1 << 40,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}, store)
	// Enough timed-out calls to have split 16 down to 1 (four halvings).
	require.Eventually(t, func() bool {
		logs := b.logs.String()
		return strings.Count(logs, `"msg":"forward: link retry"`)+strings.Count(logs, "splitting") >= 6
	}, 120*time.Second, poll, "calls timing out while the link is down")
	require.Zero(t, central.calls.Load(), "nothing reached central while the link was down")

	proxy.Up()
	require.Eventually(t, func() bool { return store.CommittedThrough() == 64 }, 60*time.Second, poll, "all committed")
	require.Equal(t, seqs(1, 64), store.applied())
	for _, s := range central.seen() {
		require.Equal(t, 16, s.n, "batch from seq %d shrunk: %v", s.first, central.seen())
	}
	require.NotContains(t, b.logs.String(), "splitting")
}
