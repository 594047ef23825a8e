package forward_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
)

// While the queue records an answer (a slow disk), the forwarder keeps
// sending: a batch queued meanwhile reaches central before that apply
// ends. Recorded in the sending loop, the apply would hold it back.
func TestSendsWhileApplying(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(5, 0)
	applying := make(chan struct{})
	var overlapped atomic.Bool
	store.applyHook = func(res queue.CommitResult) {
		if res.Results[0].GetSeq() != 1 {
			return
		}
		close(applying)
		// The apply lasts until the next batch reached central, or 20 s.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if slices.ContainsFunc(central.seen(), func(b batch) bool { return b.first == 6 }) {
				overlapped.Store(true)
				return
			}
			time.Sleep(2 * time.Millisecond) // polling interval of the slow disk
		}
	}
	start(t, serveCentral(t, central), forward.Config{MaxCount: 5, Linger: -1}, store)
	select {
	case <-applying:
	case <-time.After(10 * time.Second):
		t.Fatal("the first answer was not applied within 10 s")
	}
	store.append(5, 0)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 10 }, 60*time.Second, poll, "all committed")
	require.True(t, overlapped.Load(), "seqs 6-10 sent while the answer of 1-5 was being recorded")
	require.Equal(t, seqs(1, 10), store.applied(), "recorded in seq order, once each")
	require.Equal(t, store.ids(1, 10), central.applied())
}

// Answers waiting for a slow disk keep their batches' places in the
// window, so memory stays bounded: while the first apply hangs, central
// sees a window of batches and no more.
func TestUnrecordedAnswersHoldTheWindow(t *testing.T) {
	t.Parallel()
	const window = 3
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(100, 0)
	release := make(chan struct{})
	store.applyHook = func(res queue.CommitResult) {
		if res.Results[0].GetSeq() == 1 {
			<-release
		}
	}
	start(t, serveCentral(t, central), forward.Config{MaxCount: 5, Window: window, Linger: -1}, store)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the forwarder's stop: its applier must finish
	require.Eventually(t, func() bool { return central.calls.Load() >= window && central.active.Load() == 0 }, 10*time.Second, poll,
		"a window of batches sent and answered")
	require.Never(t, func() bool { return central.calls.Load() > window }, 500*time.Millisecond, 5*time.Millisecond,
		"more batches sent while the answers of a window wait to be recorded")
	unblock()
	require.Eventually(t, func() bool { return store.CommittedThrough() == 100 }, 30*time.Second, poll, "all committed")
	require.Equal(t, seqs(1, 100), store.applied(), "recorded in seq order, once each")
	require.Equal(t, store.ids(1, 100), central.applied())
}

// gatedStore holds the sending loop in its next wait for appends (the
// first store call of a refill) after the first batch was read, until the
// gate opens (or 10 s): what the loop does after launching a call then
// cannot run before the call starts.
type gatedStore struct {
	*memStore
	gate chan struct{}
	read atomic.Bool
}

func (s *gatedStore) Appended() <-chan struct{} {
	if s.read.Load() {
		select {
		case <-s.gate:
		case <-time.After(10 * time.Second):
		}
	}
	return s.memStore.Appended()
}

func (s *gatedStore) Read(from uint64, maxCount, maxBytes int) ([]queue.Entry, error) {
	entries, err := s.memStore.Read(from, maxCount, maxBytes)
	if len(entries) > 0 {
		s.read.Store(true)
	}
	return entries, err
}

// The forwarder is "forwarding" before its call starts: the call can reach
// central, and the link probe look at the state, before the sending loop
// runs again.
func TestForwardingBeforeCallStarts(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := &gatedStore{memStore: newMemStore("e1"), gate: make(chan struct{})}
	var fwd atomic.Pointer[forward.Forwarder]
	atCall := make(chan string, 1)
	var once sync.Once
	observe := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == centralv1.IngestService_Commit_FullMethodName {
			once.Do(func() {
				atCall <- fwd.Load().State()
				close(store.gate)
			})
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	b := start(t, serveCentral(t, central), forward.Config{Linger: -1}, store, observe)
	fwd.Store(b.fwd)
	store.append(3, 0)
	select {
	case st := <-atCall:
		require.Equal(t, forward.StateForwarding, st, "state when the call started")
	case <-time.After(10 * time.Second):
		t.Fatal("no Commit within 10 s")
	}
	require.Eventually(t, func() bool { return store.CommittedThrough() == 3 }, 10*time.Second, poll, "all committed")
}
