package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/validate"
)

// growAfter is how many successful batches at a reduced (split) size it
// takes to double the size again: growing back at every success would make
// a narrow link pay a full timeout every other batch.
const growAfter = 4

// runner is the state of one Run, owned by its goroutine.
type runner struct {
	f *Forwarder
	// next is the first seq of the next pipeline: where sending resumes.
	next uint64
	// limCount and limBytes are the batch limits, halved after a timeout.
	limCount, limBytes int
	// limWindow is the window (batches in flight), one after a sent batch
	// timed out: on a link too narrow for Window batches within the
	// per-attempt timeout, every concurrent attempt times out, whatever
	// their size. It grows back with the batch limits.
	limWindow int
	okStreak  int
	// probing limits the window to one batch after a link backoff.
	probing bool
	// linkAttempt counts link-level failures since the last success.
	linkAttempt int
	gapStreak   int
	// withdraw, when set, is a transaction central refused alone for good:
	// it is sent next as a withdrawal (CommitRequest.withdraw_reason), which
	// central records as rejected and the queue moves to the dead letters.
	withdraw *withdrawal
}

// withdrawal is a seq to withdraw and why.
type withdrawal struct {
	seq    uint64
	reason string
}

// call is one Commit in flight.
type call struct {
	first, last uint64
	n, bytes    int
	txIDs       []string
	entries     []queue.Entry // handed back to ApplyCommit with the answer
	// withdraw is the reason of a withdrawal ("" for a plain batch).
	withdraw string
	// predInFlight: a batch before it was in flight when it was sent, so a
	// gap answer may only mean that the predecessor was late.
	predInFlight bool
	done         chan callResult // buffered: the call goroutine never blocks
	// result is central's answer, checked and converted, that the applier
	// records.
	result queue.CommitResult
}

type callResult struct {
	resp *centralv1.CommitResponse
	err  error
	// sent: an attempt got a connection and sent the request (gRPC set
	// its peer). A wait-for-ready attempt that timed out waiting for the
	// link never did.
	sent bool
}

// recorded is the applier's report on one answer.
type recorded struct {
	c   *call
	err error
}

// cut is a batch read from the queue and not sent yet.
type cut struct {
	entries  []queue.Entry
	bytes    int
	withdraw string
	// full: the batch is as large as the limits allow, or more is
	// queued after it; one that is not waits for the linger.
	full bool
}

// pipe is the state of one pipeline, owned by its sending loop.
type pipe struct {
	// inflight are the batches sent and not yet recorded, in seq order:
	// inflight[:answered] are answered and with the applier, the others
	// wait for central. All of them count against the window, so that a
	// slow disk bounds the answers (and their entries) held in memory.
	inflight []*call
	answered int
	// send is the first seq not sent yet; ahead, when set, is the batch
	// from send on, read while the window was full.
	send  uint64
	ahead *cut
	// partialAt is LastSeq when a read ahead found less than a full
	// batch: reading again before more is queued would find the same.
	partialAt uint64
	// jobs feeds the applier the answers in seq order; it reports each on
	// done. Both hold a window's worth, so neither side ever blocks.
	jobs chan *call
	done chan recorded
	// stop cancels the calls and the applier; wg waits for them.
	stop func()
	wg   sync.WaitGroup
}

// resume is where a pipeline that ends now must restart: the oldest seq
// whose outcome is not recorded.
func (p *pipe) resume() uint64 {
	if len(p.inflight) > 0 {
		return p.inflight[0].first
	}
	return p.send
}

func (r *runner) window() int {
	if r.probing {
		return 1
	}
	return min(r.limWindow, r.f.cfg.Window)
}

// pipeline sends batches from r.next with up to Window of them not yet
// recorded, hands central's answers in seq order to the applier (a
// goroutine of its own, so that a slow ApplyCommit does not drain the
// window), and ends when ctx ends, a call fails or an apply fails. It
// returns with r.next set to where sending must resume and every goroutine
// it started finished.
func (r *runner) pipeline(ctx context.Context) (fail failure) {
	f := r.f
	cctx, cancelCalls := context.WithCancel(ctx)
	actx, stopApplier := context.WithCancel(ctx)
	p := &pipe{
		send: r.next,
		jobs: make(chan *call, f.cfg.Window),
		done: make(chan recorded, f.cfg.Window),
		stop: func() {
			cancelCalls()
			stopApplier()
		},
	}
	p.wg.Go(func() { f.applyLoop(actx, p.jobs, p.done) })
	defer func() {
		p.stop()
		p.wg.Wait()
	}()

	lg := linger{stop: func() bool { return false }}
	defer func() { lg.stop() }()
	for {
		appended, fl, done := r.fill(ctx, cctx, p, &lg)
		if done {
			return fl
		}
		if r.linkAttempt == 0 {
			if len(p.inflight) > 0 {
				f.setState(StateForwarding)
			} else {
				f.setState(StateIdle)
			}
		}

		var answer <-chan callResult
		if p.answered < len(p.inflight) {
			answer = p.inflight[p.answered].done
		}
		select {
		case <-ctx.Done():
			return r.stop(ctx, p)
		case res := <-answer:
			if fl, done := r.onAnswer(ctx, p, res); done {
				return fl
			}
		case rec := <-p.done:
			if fl, ok := r.record(p, rec); !ok {
				return fl
			}
		case <-appended:
		case <-lg.c:
			lg.c, lg.expired = nil, true
		}
	}
}

// linger is the wait of a batch that is not full for more writes to join
// it; expired lets the batch go as it is.
type linger struct {
	c       <-chan time.Time
	stop    func() bool
	expired bool
}

// fill sends batches while the window has room and reads one ahead when it
// is full. It returns the channel that tells of new appends when it waits
// for them (nil otherwise), or done with the failure that ends the pipeline.
func (r *runner) fill(ctx, cctx context.Context, p *pipe, lg *linger) (appended <-chan struct{}, fail failure, done bool) {
	f := r.f
	for {
		room := len(p.inflight) < r.window()
		if p.ahead == nil {
			if !room && p.partialAt == f.store.LastSeq() {
				return nil, failure{}, false
			}
			// Taken before LastSeq so that an append in between is not missed.
			ch := f.store.Appended()
			if p.send > f.store.LastSeq() {
				return ch, failure{}, false
			}
			b, err := r.read(p.send)
			if err != nil {
				// The answers already handed over are recorded first,
				// as when this loop recorded them itself.
				if fl, ok := r.settle(ctx, p); !ok {
					return nil, fl, true
				}
				return nil, r.readFailed(p, err), true
			}
			if b == nil {
				return ch, failure{}, false
			}
			if !b.full && !room {
				// Read again when a slot frees, or at once when more
				// is queued: a full batch is worth holding ahead.
				p.partialAt = f.store.LastSeq()
				return nil, failure{}, false
			}
			if !b.full && f.cfg.Linger > 0 && !lg.expired {
				if lg.c == nil {
					lg.c, lg.stop = f.cfg.Clock.NewTimer(f.cfg.Linger)
				}
				return ch, failure{}, false
			}
			p.ahead = b
		}
		if !room {
			return nil, failure{}, false
		}
		b := p.ahead
		p.ahead = nil
		lg.stop()
		lg.c, lg.expired = nil, false
		if err := r.throttle(cctx, b.bytes); err != nil {
			return nil, r.stop(ctx, p), true
		}
		if r.linkAttempt == 0 {
			// Before the call starts: the link probe skips a forwarder
			// with a batch in flight.
			f.setState(StateForwarding)
		}
		p.inflight = append(p.inflight, r.launch(cctx, &p.wg, b.entries, b.bytes, p.answered < len(p.inflight), b.withdraw))
		p.send = b.entries[len(b.entries)-1].Seq + 1
	}
}

// onAnswer takes central's answer for the oldest call not yet answered: a
// result goes to the applier; anything else ends the pipeline (done), once
// every answer before it is recorded.
func (r *runner) onAnswer(ctx context.Context, p *pipe, res callResult) (fail failure, done bool) {
	c := p.inflight[p.answered]
	var err error
	if res.err == nil {
		if c.result, err = r.result(c, res.resp); err == nil {
			p.jobs <- c
			p.answered++
			return failure{}, false
		}
	}
	// An answer that ends the pipeline is handled once every
	// answer before it is recorded, as when this loop recorded
	// them itself: a gap's resend point and rewind rest on them.
	if fl, ok := r.settle(ctx, p); !ok {
		return fl, true
	}
	r.next = c.first
	if err != nil {
		return r.f.fail(StateBackoff, slog.LevelError, r.backoff(), err), true
	}
	return r.refusal(ctx, c, res), true
}

// read cuts the next batch from seq on (nil: the queue has none yet).
func (r *runner) read(send uint64) (*cut, error) {
	count, withdraw := r.limCount, ""
	if w := r.withdraw; w != nil && send <= w.seq {
		// The refused transaction goes alone, as a withdrawal;
		// the batch before it stops short of it.
		if send == w.seq {
			count, withdraw = 1, w.reason
		} else {
			count = min(count, int(w.seq-send))
		}
	}
	entries, err := r.f.store.Read(send, count, r.limBytes)
	if err == nil {
		err = checkEntries(entries, send)
	}
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	b := &cut{entries: entries, withdraw: withdraw}
	for _, e := range entries {
		b.bytes += e.Size
	}
	b.full = len(entries) >= count || b.bytes >= r.limBytes || entries[len(entries)-1].Seq < r.f.store.LastSeq()
	return b, nil
}

// readFailed ends the pipeline on a failed read of seq p.send.
func (r *runner) readFailed(p *pipe, err error) failure {
	f := r.f
	r.next = p.resume()
	if errors.Is(err, queue.ErrPruned) {
		// After the backoff, probe central again from where the
		// edge stands: its cursor may have been restored.
		r.next = f.store.CommittedThrough() + 1
		return f.fail(StateStuck, slog.LevelError, r.backoff(), fmt.Errorf(
			"central wants seq %d again but the edge pruned its payload: operator action needed: %w", p.send, err))
	}
	return f.fail(StateBackoff, slog.LevelWarn, r.backoff(), fmt.Errorf("read queue from seq %d: %w", p.send, err))
}

// applyLoop records the answers handed to it, in the order given (seq
// order), until ctx ends or an apply fails: the answers after a failed one
// must not be recorded, the pipeline resends from the failed one.
func (f *Forwarder) applyLoop(ctx context.Context, jobs <-chan *call, done chan<- recorded) {
	for {
		var c *call
		select {
		case <-ctx.Done():
			return
		case c = <-jobs:
		}
		if ctx.Err() != nil {
			return
		}
		err := f.store.ApplyCommit(c.result)
		if err == nil {
			f.recordCommit(c.result, c.n)
			if c.withdraw != "" {
				f.log.Warn("transaction refused alone by central withdrawn; it is a dead letter now",
					"seq", c.first, "tx", c.txIDs[0], "reason", c.withdraw)
			}
		}
		done <- recorded{c: c, err: err}
		if err != nil {
			return
		}
	}
}

// stop ends the pipeline p with ctx: the calls are cancelled and the
// applier stops after the apply it is in, whose report still counts.
func (r *runner) stop(ctx context.Context, p *pipe) failure {
	p.stop()
	p.wg.Wait()
	for len(p.done) > 0 {
		if fl, ok := r.record(p, <-p.done); !ok {
			return fl
		}
	}
	r.next = p.resume()
	return failure{err: ctx.Err()}
}

// settle waits until the applier recorded every answer handed to it. On
// false the pipeline must end with the failure returned (r.next set).
func (r *runner) settle(ctx context.Context, p *pipe) (failure, bool) {
	for p.answered > 0 {
		select {
		case <-ctx.Done():
			return r.stop(ctx, p), false
		case rec := <-p.done:
			if fl, ok := r.record(p, rec); !ok {
				return fl, false
			}
		}
	}
	return failure{}, true
}

// record takes the applier's report on the oldest batch in flight. On
// false the pipeline must end with the failure returned (r.next set).
func (r *runner) record(p *pipe, rec recorded) (failure, bool) {
	f := r.f
	c := rec.c
	if p.answered == 0 || p.inflight[0] != c {
		// The applier takes the answers in the order handed over: this
		// would be a bug of this file, and recording more would break
		// the order.
		panic(fmt.Sprintf("forward: applier reported seqs %d-%d out of order", c.first, c.last))
	}
	p.inflight = p.inflight[1:]
	p.answered--
	if rec.err != nil {
		r.next = c.first
		return f.fail(StateBackoff, slog.LevelError, r.backoff(),
			fmt.Errorf("record commit of seqs %d-%d: %w", c.first, c.last, rec.err)), false
	}
	if w := r.withdraw; w != nil && c.last >= w.seq {
		r.withdraw = nil
	}
	r.next = c.last + 1
	r.linkAttempt, r.gapStreak, r.probing = 0, 0, false
	if r.limCount < f.cfg.MaxCount || r.limBytes < f.cfg.MaxBytes || r.limWindow < f.cfg.Window {
		if r.okStreak++; r.okStreak >= growAfter {
			r.okStreak = 0
			r.limCount = min(f.cfg.MaxCount, r.limCount*2)
			r.limBytes = min(f.cfg.MaxBytes, r.limBytes*2)
			r.limWindow = min(f.cfg.Window, r.limWindow*2)
		}
	}
	return failure{}, true
}

// checkEntries verifies that the store answered from seq on without gaps.
func checkEntries(entries []queue.Entry, from uint64) error {
	for i, e := range entries {
		if e.Seq != from+uint64(i) || e.Tx == nil {
			return fmt.Errorf("queue returned seq %d (tx present %t) at position %d of a read from %d",
				e.Seq, e.Tx != nil, i, from)
		}
	}
	return nil
}

func (r *runner) throttle(ctx context.Context, bytes int) error {
	lim := r.f.limiter
	if lim == nil {
		return nil
	}
	for bytes > 0 {
		n := min(bytes, lim.Burst())
		if err := lim.WaitN(ctx, n); err != nil {
			return err
		}
		bytes -= n
	}
	return nil
}

func (r *runner) launch(ctx context.Context, wg *sync.WaitGroup, entries []queue.Entry, bytes int, pred bool, withdraw string) *call {
	f := r.f
	txs := make([]*opsv1.Transaction, len(entries))
	ids := make([]string, len(entries))
	for i, e := range entries {
		txs[i] = e.Tx
		ids[i] = e.Tx.GetId()
	}
	c := &call{
		first:        entries[0].Seq,
		last:         entries[len(entries)-1].Seq,
		n:            len(entries),
		bytes:        bytes,
		txIDs:        ids,
		entries:      entries,
		predInFlight: pred,
		withdraw:     withdraw,
		done:         make(chan callResult, 1),
	}
	req := &centralv1.CommitRequest{
		EdgeId:       f.store.EdgeID(),
		Epoch:        f.store.Epoch(),
		FirstSeq:     c.first,
		Transactions: txs,
	}
	if withdraw != "" {
		// Only what names the transaction: its content is what central
		// refused (too large, say); the dead letter keeps it whole.
		req.WithdrawReason = withdraw
		for i, tx := range txs {
			txs[i] = &opsv1.Transaction{Id: tx.GetId(), EdgeId: tx.GetEdgeId(), Epoch: tx.GetEpoch(),
				Seq: tx.GetSeq(), AcceptedAt: tx.GetAcceptedAt()}
		}
		bytes = 0
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		cctx, cancel := context.WithTimeout(ctx, f.callTimeout(bytes))
		defer cancel()
		var p peer.Peer
		resp, err := f.client.Commit(cctx, req, append(f.callOptions(bytes), grpc.Peer(&p))...)
		c.done <- callResult{resp: resp, err: err, sent: p.Addr != nil}
	}()
	return c
}

// refusal handles a failed call of the oldest batch in flight, every
// answer before it recorded; it ends the pipeline (r.next set to c.first
// or where central wants the resend).
func (r *runner) refusal(ctx context.Context, c *call, res callResult) failure {
	f := r.f
	if ctx.Err() != nil {
		return failure{err: ctx.Err()}
	}

	err := fmt.Errorf("commit seqs %d-%d: %w", c.first, c.last, res.err)
	st := status.Convert(res.err)
	switch st.Code() {
	case codes.Aborted:
		return r.sequenceGap(c, st, err)

	case codes.InvalidArgument, codes.PermissionDenied, codes.ResourceExhausted:
		return r.refused(c, st, err)

	case codes.DeadlineExceeded:
		// A timeout of a call that was sent: the batch may not fit the link
		// within the per-attempt timeout, and a smaller batch can pass. One
		// that only waited for a link that was down says nothing about the
		// batch's size: splitting it would leave batches of one behind.
		if res.sent {
			r.limWindow, r.okStreak = 1, 0
		}
		if c.n > 1 && res.sent {
			r.limCount = max(1, c.n/2)
			r.limBytes = max(1, c.bytes/2)
			r.okStreak = 0
			f.log.Warn("batch sent but timed out; splitting it", "code", st.Code().String(), "first_seq", c.first, "count", c.n,
				"bytes", c.bytes, "new_max_count", r.limCount, "new_max_bytes", r.limBytes)
			f.recordError("", err)
			return failure{err: err}
		}
		return f.fail(StateBackoff, slog.LevelWarn, r.backoff(), err)

	case codes.FailedPrecondition:
		return r.cursorConflict(st, err)

	case codes.Unauthenticated:
		return f.fail(StateRefused, slog.LevelError, r.maxBackoff(), err)

	default:
		return f.fail(StateBackoff, slog.LevelWarn, r.backoff(), err)
	}
}

// sequenceGap handles central's ABORTED: it expects an earlier seq, or the
// batch overtook a predecessor in flight.
func (r *runner) sequenceGap(c *call, st *status.Status, err error) failure {
	f := r.f
	gap := detail[*centralv1.SequenceGap](st)
	switch {
	case gap == nil || gap.GetExpectedSeq() == 0 || gap.GetExpectedSeq() >= c.first:
		return f.fail(StateBackoff, slog.LevelError, r.backoff(),
			fmt.Errorf("ABORTED without a usable SequenceGap (want expected_seq below %d): %w", c.first, err))
	case c.predInFlight:
		// Its predecessors are applied by now (they were answered first):
		// central only refused it because it arrived before them.
		f.log.Debug("batch overtook its predecessor; resending", "first_seq", c.first)
		return failure{err: err}
	}
	r.gapStreak++
	r.next = gap.GetExpectedSeq()
	if r.next <= f.store.CommittedThrough() {
		// Central's database lost commits the edge recorded (a
		// failover to a lagging replica): their LSNs are of commits
		// that no longer exist, and the resend brings new ones.
		if _, rerr := f.store.Rewind(r.next); rerr != nil {
			lost := r.next
			if errors.Is(rerr, queue.ErrPruned) {
				// After the backoff, probe central again from where the
				// edge stands: its database may be restored.
				r.next = f.store.CommittedThrough() + 1
				return f.fail(StateStuck, slog.LevelError, r.backoff(), fmt.Errorf(
					"central lost its commits from seq %d but the edge pruned their payloads: operator action needed: %w", lost, rerr))
			}
			return f.fail(StateBackoff, slog.LevelError, r.backoff(),
				fmt.Errorf("take back the commits central lost from seq %d: %w", lost, rerr))
		}
	}
	f.log.Warn("central reports a sequence gap; resending from its expected seq",
		"expected_seq", r.next, "batch_first_seq", c.first,
		"committed_through", f.store.CommittedThrough(), "gap_streak", r.gapStreak)
	if r.gapStreak > 3 {
		return f.fail(StateBackoff, slog.LevelWarn, r.backoff(), err)
	}
	f.recordError("", err)
	return failure{err: err}
}

// cursorConflict handles central's FAILED_PRECONDITION: a seq it passed
// holds another transaction, or one it can no longer tell apart.
func (r *runner) cursorConflict(st *status.Status, err error) failure {
	f := r.f
	cc := detail[*centralv1.CursorConflict](st)
	switch {
	case cc != nil && cc.GetAppliedTransactionId() == "":
		// Central pruned its record of the seq: it cannot tell whether
		// this edge's transaction there is the one it applied. An edge
		// restored from an old backup of its store reuses seqs central
		// applied after the backup; taking them as applied would lose
		// acknowledged writes, so the queue holds for the operator.
		return f.fail(StateConflict, slog.LevelError, r.backoff(), fmt.Errorf(
			"cursor conflict: central passed seq %d (its epoch %q, cursor %d) but pruned its record of which transaction it applied there, so it cannot tell whether this edge's %s is that one; if this edge's store was restored from a backup, its new transactions reuse seqs central already applied: operator action needed: %w",
			cc.GetSeq(), cc.GetEpoch(), cc.GetCursorSeq(), cc.GetRequestTransactionId(), err))
	case cc != nil:
		return f.fail(StateConflict, slog.LevelError, r.backoff(), fmt.Errorf(
			"cursor conflict: central applied transaction %s at seq %d (its epoch %q, cursor %d) but this edge (epoch %q) has %s there; the edge store was replaced, wiped or restored from a backup: operator action needed: %w",
			cc.GetAppliedTransactionId(), cc.GetSeq(), cc.GetEpoch(), cc.GetCursorSeq(),
			f.store.Epoch(), cc.GetRequestTransactionId(), err))
	}
	return f.fail(StateRefused, slog.LevelError, r.maxBackoff(), err)
}

// refused handles central refusing a batch for good (INVALID_ARGUMENT,
// PERMISSION_DENIED, RESOURCE_EXHAUSTED: gRPC's message-size limit, on
// either side). A single transaction must never hold the queue, the whole
// link may: a batch of several is split until the refused transaction
// stands alone, which is then withdrawn (central records it rejected and
// the queue moves it to the dead letters with the reason). When central
// refuses the withdrawal too, the refusal is the link's (identity, a
// batch-level field): the queue holds, in state refused, and the
// transaction is tried again normally after the backoff.
func (r *runner) refused(c *call, st *status.Status, err error) failure {
	f := r.f
	switch {
	case c.withdraw != "":
		r.withdraw = nil
		return f.fail(StateRefused, slog.LevelError, r.maxBackoff(),
			fmt.Errorf("central refused withdrawing seq %d too: the link is refused: %w", c.first, err))
	case c.n > 1:
		r.limCount = max(1, c.n/2)
		r.limBytes = max(1, c.bytes/2)
		r.okStreak = 0
		f.log.Warn("central refused a batch; splitting it to find the transaction it refuses",
			"code", st.Code().String(), "first_seq", c.first, "count", c.n, "bytes", c.bytes,
			"new_max_count", r.limCount, "new_max_bytes", r.limBytes)
		f.recordError("", err)
		return failure{err: err}
	}
	reason := st.Code().String() + ": " + st.Message()
	if len(reason) > validate.MaxWithdrawReasonLen {
		reason = strings.ToValidUTF8(reason[:validate.MaxWithdrawReasonLen-3], "") + "..."
	}
	r.withdraw = &withdrawal{seq: c.first, reason: reason}
	f.log.Warn("central refused a transaction alone; withdrawing it into the dead letters",
		"seq", c.first, "tx", c.txIDs[0], "bytes", c.bytes, "reason", reason)
	f.recordError("", err)
	return failure{err: err}
}

// result checks central's answer against the batch and converts it.
func (r *runner) result(c *call, resp *centralv1.CommitResponse) (queue.CommitResult, error) {
	if len(resp.GetResults()) != c.n {
		return queue.CommitResult{}, fmt.Errorf("central answered %d results for %d transactions (seqs %d-%d)",
			len(resp.GetResults()), c.n, c.first, c.last)
	}
	for i, tr := range resp.GetResults() {
		if want := c.first + uint64(i); tr.GetSeq() != want || tr.GetTransactionId() != c.txIDs[i] {
			return queue.CommitResult{}, fmt.Errorf("central answered seq %d tx %s at position of seq %d tx %s",
				tr.GetSeq(), tr.GetTransactionId(), want, c.txIDs[i])
		}
	}
	return queue.CommitResult{
		ThroughSeq:  resp.GetCommittedThroughSeq(),
		LSN:         resp.GetCommitLsnValue(),
		LSNText:     resp.GetCommitLsn(),
		CommittedAt: r.f.cfg.Clock.Now(),
		Results:     resp.GetResults(),
		Entries:     c.entries,
	}, nil
}

func (r *runner) backoff() time.Duration {
	cfg := &r.f.cfg
	return backoff(cfg.BackoffBase, cfg.BackoffMax, r.linkAttempt+1, cfg.Rand())
}

func (r *runner) maxBackoff() time.Duration {
	cfg := &r.f.cfg
	return backoff(cfg.BackoffMax, cfg.BackoffMax, 1, cfg.Rand())
}

// detail returns the first detail of type T of st, or nil.
func detail[T any](st *status.Status) T {
	var zero T
	for _, d := range st.Details() {
		if t, ok := d.(T); ok {
			return t
		}
	}
	return zero
}
