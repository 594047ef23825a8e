package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// submitReq is one call waiting for the appender.
type submitReq struct {
	txs    []*opsv1.Transaction
	retry  *retryOp      // set: re-enqueue a dead letter instead
	commit *CommitResult // set: record central's answer instead (a part: applyPart results)
	done   chan submitResp
	// Estimated Badger entries and bytes the request writes (estimate),
	// computed by the caller so the appender can cut groups that fit one
	// Badger transaction.
	entries, bytes int
}

type retryOp struct {
	id     string
	edited *opsv1.Transaction
}

type submitResp struct {
	acks []*edgev1.SubmitResult
	err  error
}

// Submit stores txs durably and answers one result per transaction, in
// order, once they are fsync'd. A transaction id the store already knows (or
// one given twice) gets its first answer with Duplicate set, and nothing is
// stored for it. The queue takes ownership of txs: it fills in empty record
// ids, edge id, epoch, seq and accepted_at. The request is refused whole with
// ErrQueueFull or ErrDiskFull when it does not fit.
func (q *Queue) Submit(ctx context.Context, txs []*opsv1.Transaction) ([]*edgev1.SubmitResult, error) {
	if len(txs) == 0 {
		return nil, nil
	}
	r := &submitReq{txs: txs, done: make(chan submitResp, 1)}
	r.estimate()
	return q.app.do(ctx, r)
}

// estimate sets an upper bound of what r writes into the group's Badger
// transaction (as batch.reserve counts it): per transaction its entry and
// state (keys, Badger's per-entry overhead, values under valueThreshold)
// and its change-log status (at most the payload's size); the overlays
// are the indexer's (indexer.go).
func (r *submitReq) estimate() {
	for _, tx := range r.txs {
		r.entries += 3
		r.bytes += proto.Size(tx) + 2*len(tx.GetId()) + 800
	}
	if r.commit != nil {
		// Per result: its state, two overlay deletions, a dead letter, a
		// change and an unseen record's share; then apply-high and the mark.
		r.entries += 6*len(r.commit.Results) + 8
		r.bytes += 1200*len(r.commit.Results) + 4<<10
		for _, res := range r.commit.Results {
			r.bytes += 2 * len(res.GetReason())
		}
	}
	if r.retry != nil {
		r.entries += 16
		r.bytes += 8 << 10
		if r.retry.edited != nil {
			r.bytes += 2 * proto.Size(r.retry.edited)
		}
	}
}

func (a *appender) do(ctx context.Context, r *submitReq) ([]*edgev1.SubmitResult, error) {
	select {
	case <-a.stop:
		return nil, ErrClosed
	default:
	}
	select {
	case a.reqs <- r:
	case <-a.stop:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once handed over, the write may happen even if ctx ends: the caller
	// then learns the answer by resubmitting (same transaction id).
	select {
	case resp := <-r.done:
		return resp.acks, resp.err
	case <-a.stopped:
		select {
		case resp := <-r.done:
			return resp.acks, resp.err
		default:
			return nil, ErrClosed
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// appendLoop is the one appender. It takes every request waiting (a
// group), writes the group in one Badger transaction and answers all of it
// once that transaction is fsync'd (group commit). It is pipelined one group
// deep: while a group commits (Badger writes and fsyncs it), the appender
// prepares the next one — dedupe lookups, seqs, marshalling, entries — on
// the assumption that the committing group lands; the next group is handed
// to Badger only after it has, so a failed group never leaves a hole in the
// sequence. A prepared group is thrown away and prepared again when that
// assumption breaks (the group failed, or another writer got in between).
func (a *appender) appendLoop() {
	for {
		first, ok := a.nextRequest()
		if !ok {
			return
		}
		group, size, pipelined := a.fill(first)
		if hook := a.opts.hooks.filled; hook != nil {
			hook(group)
		}
		p := a.prepareLocked(group, pipelined)
		a.join(p, size)
		if p = a.dropBadPart(p); p == nil {
			a.wmu.Unlock()
			continue
		}
		if p.g.fatal != nil {
			// Did not fit one Badger transaction (or a Badger read failed):
			// the group is written the plain way, in parts if it must.
			p.g.w.discard()
			a.writeGroup(p.group)
			a.wmu.Unlock()
			continue
		}
		a.start(p)
		a.fl = p
		a.wmu.Unlock()
	}
}

// appender is the append path (group commit): the one goroutine that
// writes Submit's and RetryDeadLetter's requests, and its state from one
// group to the next.
type appender struct {
	*core
	fl   *flight    // the group committing, if any
	next *submitReq // a request that did not fit its group: starts the next
}

// groupSize is what a group holds so far: transactions, and the estimated
// Badger entries and bytes.
type groupSize struct{ n, entries, bytes int }

// fits reports whether r still fits one Badger transaction with the group.
func (s groupSize) fits(r *submitReq) bool {
	return s.entries+r.entries <= batchMaxEntries && s.bytes+r.bytes <= batchMaxBytes
}

func (s *groupSize) add(r *submitReq) {
	s.n, s.entries, s.bytes = s.n+len(r.txs), s.entries+r.entries, s.bytes+r.bytes
}

// nextRequest is the request that starts the next group, landing the
// group in flight if it is done first. false: the queue is stopping (the
// group in flight landed, every request waiting refused).
func (a *appender) nextRequest() (*submitReq, bool) {
	if a.next != nil {
		r := a.next
		a.next = nil
		return r, true
	}
	for {
		var landed <-chan error
		if a.fl != nil {
			landed = a.fl.done
		}
		select {
		case <-a.stop:
			a.shutdown()
			return nil, false
		case err := <-landed:
			a.land(a.fl, err)
			a.fl = nil
		case r := <-a.reqs:
			return r, true
		}
	}
}

// shutdown lands the group in flight and refuses every request waiting.
func (a *appender) shutdown() {
	if a.fl != nil {
		a.land(a.fl, <-a.fl.done)
	}
	for {
		select {
		case r := <-a.reqs:
			r.done <- submitResp{err: ErrClosed}
		default:
			return
		}
	}
}

// fill gathers the requests already waiting behind first, up to MaxGroup
// transactions and what one Badger transaction holds. pipelined: none is a
// retry, so the group may be prepared while the one ahead commits.
func (a *appender) fill(first *submitReq) (group []*submitReq, size groupSize, pipelined bool) {
	group = []*submitReq{first}
	size.add(first)
	pipelined = first.retry == nil && first.commit == nil
	for size.n < a.opts.MaxGroup {
		select {
		case r := <-a.reqs:
			if !size.fits(r) {
				a.next = r
				return group, size, pipelined
			}
			group = append(group, r)
			size.add(r)
			pipelined = pipelined && r.retry == nil && r.commit == nil
		default:
			return group, size, pipelined
		}
	}
	return group, size, pipelined
}

// prepareLocked prepares group, on top of the group in flight while it
// commits when it can, lands that group, and returns with wmu held and
// the group prepared on the current counters: a preparation the landing
// (or another writer) made stale is thrown away and made again.
func (a *appender) prepareLocked(group []*submitReq, pipelined bool) *flight {
	var p *flight
	if a.fl != nil && pipelined && !a.fl.records() {
		p = a.prepare(group, a.fl)
	}
	if a.fl != nil {
		a.land(a.fl, <-a.fl.done)
		a.fl = nil
	}
	a.wmu.Lock()
	if p != nil && (p.g.fatal != nil || p.gen != a.wgen || p.base != a.snapshot()) {
		p.g.w.discard()
		p = nil
	}
	if p == nil {
		p = a.prepare(group, nil)
	}
	return p
}

// join adds to p what arrived while the group ahead committed, until a
// request does not fit (it starts the next group). wmu is held.
func (a *appender) join(p *flight, size groupSize) {
	for a.next == nil && p.g.fatal == nil && size.n < a.opts.MaxGroup {
		var r *submitReq
		select {
		case r = <-a.reqs:
		default:
		}
		if r == nil {
			return
		}
		if r.retry != nil || r.commit != nil || !size.fits(r) {
			a.next = r // it reads what the group ahead writes
			return
		}
		p.add(r)
		size.add(r)
	}
}

// dropBadPart answers a commit part whose recording failed in p with its
// error and prepares the rest of p again without it (nil: nothing
// left), so that a part that cannot be recorded (a corrupt state, say)
// fails ApplyCommit alone, not every Submit that shared its group while
// the forwarder retries it. Nothing of p was committed: a prepared group
// is one Badger transaction. wmu is held.
func (a *appender) dropBadPart(p *flight) *flight {
	for p.badPart != nil {
		bad := p.badPart
		p.g.w.discard()
		rest := make([]*submitReq, 0, len(p.group)-1)
		for i, r := range p.group {
			if r == bad {
				bad.done <- p.resps[i]
			} else {
				rest = append(rest, r)
			}
		}
		if len(rest) == 0 {
			return nil
		}
		p = a.prepare(rest, nil)
	}
	return p
}

// flight is a prepared append group: one Badger transaction holding all of
// it, and the answers to give once it is durable.
type flight struct {
	group []*submitReq
	resps []submitResp
	g     *groupWrite
	// badPart is the commit part whose recording failed the group (not
	// for want of room: that group is written the plain way instead).
	badPart *submitReq
	base    meta       // the counters the group was prepared on
	gen     uint64     // wgen it was prepared on
	done    chan error // the Badger commit's outcome
	// ahead is the Badger transaction the next group is prepared in while
	// this one commits. It is opened before this one commits: one opened
	// after would wait for that commit to read (Badger's read timestamps),
	// so it does not see this group's writes: the next group looks up
	// this group's first answers in known instead.
	ahead *badger.Txn
}

// prepare builds group's Badger transaction without committing it. With
// after set (the group committing now) it works ahead: it takes after's
// counters and first answers as its own and needs no lock; else the caller
// holds wmu. A Badger transaction that would outgrow its bounds sets
// p.g.fatal to errGroupFull.
func (a *appender) prepare(group []*submitReq, after *flight) *flight {
	p := &flight{done: make(chan error, 1)}
	if after != nil {
		p.base, p.gen = *after.g.m, after.gen
	} else {
		p.base, p.gen = a.snapshot(), a.wgen
	}
	m := p.base
	var w *batch
	if after != nil && after.ahead != nil {
		w = &batch{c: a.core, txn: after.ahead, m: &m}
		after.ahead = nil
	} else {
		w = a.newBatch(&m)
	}
	w.noFlush = true
	p.g = a.newGroupWrite(w)
	if after != nil {
		p.g.prev = after.g.known
	}
	for _, r := range group {
		p.add(r)
	}
	return p
}

// add writes r into p's Badger transaction (unless p already failed) and
// keeps r's answer for when p lands.
func (p *flight) add(r *submitReq) {
	p.group = append(p.group, r)
	var resp submitResp
	switch g := p.g; {
	case g.fatal != nil:
		resp.err = g.fatal
	case r.retry != nil:
		var a *edgev1.SubmitResult
		a, resp.err = g.retry(r.retry)
		resp.acks = []*edgev1.SubmitResult{a}
	case r.commit != nil:
		// Whatever failed may have written part of the answer into the
		// group's Badger transaction: the group is not committed so.
		if resp.err = (&committer{core: g.c}).record(g.w, g.m, *r.commit); resp.err != nil {
			g.fatal = resp.err
			if !errors.Is(resp.err, errGroupFull) {
				p.badPart = r
			}
		}
	default:
		resp.acks, resp.err = g.submit(r.txs)
	}
	p.resps = append(p.resps, resp)
}

// records reports whether p records a commit answer: it changes states
// a group prepared ahead would read (its dedupe answers carry them).
func (p *flight) records() bool {
	for _, r := range p.group {
		if r.commit != nil {
			return true
		}
	}
	return false
}

// start hands p's Badger transaction to Badger; the caller holds wmu.
func (a *appender) start(p *flight) {
	a.inflight = true
	err := a.checkFresh()
	if err == nil {
		err = p.g.w.seal()
	}
	if err != nil {
		p.g.w.discard()
		p.done <- err
		return
	}
	txn := p.g.w.txn
	p.g.w.txn = nil
	p.ahead = a.db.NewTransaction(true)
	done := func(err error) { p.done <- err }
	if hook := a.opts.hooks.commitGroup; hook != nil {
		go hook(p, txn, done)
		return
	}
	txn.CommitWith(done)
}

// land takes the outcome of p's Badger commit and answers p's callers.
func (a *appender) land(p *flight, err error) {
	if p.ahead != nil {
		p.ahead.Discard()
		p.ahead = nil
	}
	a.wmu.Lock()
	a.settle(p, err)
	a.inflight = false
	a.wcond.Broadcast()
	a.wmu.Unlock()
	a.answer(p)
}

// writeGroup writes a group the plain way (a Badger transaction that is
// committed, in parts when it outgrows one, before returning) and answers
// it. The caller holds wmu and no group is in flight.
func (a *appender) writeGroup(group []*submitReq) {
	m := a.snapshot()
	p := &flight{base: m, g: a.newGroupWrite(a.newBatch(&m))}
	for _, r := range group {
		p.add(r)
	}
	err := p.g.fatal // a Badger write failed: the group's batch is unusable
	if err == nil {
		err = p.g.w.commit()
	} else {
		p.g.w.discard()
	}
	a.settle(p, err)
	a.answer(p)
}

// settle records p's outcome; the caller holds wmu. On success the
// counters move. On failure every caller gets the error, and the counters
// are read back from the store: part of a group written in several Badger
// transactions may be durable, and the callers' retries get its first
// answers; a group prepared on p's counters is stale.
func (a *appender) settle(p *flight, err error) {
	a.groups.Add(1)
	if err == nil {
		err = a.syncFailed.err()
	}
	if errors.Is(err, ErrSyncFailed) {
		// Not acknowledged, and the counters stay where the last durable
		// write left them, so the forwarder never reads the group (central
		// must not hold a seq the edge could lose). Nothing is written
		// again until the store is reopened.
		a.log.Error("append group not acknowledged: value-log fsync failed", "err", err, "requests", len(p.group))
		a.wgen++
		for i := range p.resps {
			p.resps[i] = submitResp{err: fmt.Errorf("queue: write: %w", err)}
		}
		return
	}
	if err == nil {
		a.setMeta(*p.g.m)
		a.accepted.Add(p.g.m.lastSeq - p.base.lastSeq)
		return
	}
	a.log.Error("append group failed", "err", err, "requests", len(p.group))
	a.refresh()
	if durable := a.snapshot().lastSeq; durable > p.base.lastSeq {
		// Parts written before the failure are stored: their transactions
		// were accepted (the callers' retries get them as duplicates).
		a.accepted.Add(durable - p.base.lastSeq)
	}
	a.wgen++
	for i := range p.resps {
		p.resps[i] = submitResp{err: fmt.Errorf("queue: write: %w", err)}
	}
}

// answer wakes the forwarder when p stored anything and gives each of p's
// callers its answer.
func (a *appender) answer(p *flight) {
	if a.snapshot().lastSeq != p.base.lastSeq {
		select {
		case a.appended <- struct{}{}:
		default:
		}
		a.ix.kick()
	}
	for i, r := range p.group {
		r.done <- p.resps[i]
	}
}

// groupWrite is the state of one append group.
type groupWrite struct {
	c       *core
	w       *batch
	m       *meta
	now     time.Time
	free    uint64
	freeErr error
	written uint64                          // payload bytes written by this group so far
	known   map[string]*edgev1.SubmitResult // first answers given in this group
	prev    map[string]*edgev1.SubmitResult // those of the group committing ahead of this one
	fatal   error
}

// newGroupWrite starts a group writing into w (and w's counters), with the
// free disk space of the moment.
func (a *appender) newGroupWrite(w *batch) *groupWrite {
	g := &groupWrite{c: a.core, w: w, m: w.m, now: a.opts.Now(), known: make(map[string]*edgev1.SubmitResult)}
	g.free, g.freeErr = a.opts.StatFS(a.opts.Dir)
	if g.freeErr != nil {
		a.log.Error("statfs of data dir failed; refusing writes", "dir", a.opts.Dir, "err", g.freeErr)
	}
	return g
}

func dupOf(a *edgev1.SubmitResult) *edgev1.SubmitResult {
	d := proto.Clone(a).(*edgev1.SubmitResult)
	d.Duplicate = true
	return d
}

type freshTx struct {
	tx      *opsv1.Transaction
	st      txState
	payload []byte
}

func (g *groupWrite) submit(txs []*opsv1.Transaction) ([]*edgev1.SubmitResult, error) {
	acks := make([]*edgev1.SubmitResult, len(txs))
	local := make(map[string]*edgev1.SubmitResult, len(txs))
	var fresh []freshTx
	seq := g.m.lastSeq
	var bytes uint64
	for i, tx := range txs {
		id := tx.GetId()
		if id == "" {
			return nil, fmt.Errorf("%w: transactions[%d].id is empty", ErrInvalid, i)
		}
		if a, ok := local[id]; ok {
			acks[i] = dupOf(a)
			continue
		}
		if a, ok := g.known[id]; ok {
			acks[i] = dupOf(a)
			local[id] = a
			continue
		}
		if a, ok := g.prev[id]; ok {
			acks[i] = dupOf(a)
			local[id] = a
			continue
		}
		st, found, err := getState(g.w.txn, id)
		if err != nil {
			g.fatal = err
			return nil, err
		}
		if found {
			acks[i] = st.ack(id, true)
			local[id] = st.ack(id, false)
			continue
		}
		seq++
		f, err := g.prepare(tx, seq)
		if err != nil {
			return nil, fmt.Errorf("%w: transactions[%d]: %v", ErrInvalid, i, err)
		}
		bytes += uint64(len(f.payload))
		fresh = append(fresh, f)
		a := f.st.ack(id, false)
		acks[i], local[id] = a, a
	}
	if len(fresh) == 0 {
		return acks, nil
	}
	if err := g.fits(bytes); err != nil {
		return nil, err
	}
	if err := g.write(fresh); err != nil {
		return nil, err
	}
	for id, a := range local {
		g.known[id] = a
	}
	return acks, nil
}

// prepare stamps a new transaction with what only the edge sets and
// marshals it.
func (g *groupWrite) prepare(tx *opsv1.Transaction, seq uint64) (freshTx, error) {
	rids := make([]string, len(tx.GetMutations()))
	for j, mu := range tx.GetMutations() {
		id, err := fillRecordID(mu)
		if err != nil {
			return freshTx{}, fmt.Errorf("mutations[%d]: %w", j, err)
		}
		rids[j] = id
	}
	tx.EdgeId = g.c.opts.EdgeID
	tx.Epoch = g.c.epoch
	tx.Seq = seq
	tx.AcceptedAt = timestamppb.New(g.now)
	payload, err := proto.Marshal(tx)
	if err != nil {
		return freshTx{}, err
	}
	return freshTx{
		tx:      tx,
		payload: payload,
		st: txState{
			Seq:        seq,
			State:      int32(edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED),
			AcceptedAt: g.now.UnixNano(),
			RecordIDs:  rids,
		},
	}, nil
}

// fits checks the queue limit and the disk reserve for bytes more.
func (g *groupWrite) fits(bytes uint64) error {
	pending := uint64(0)
	if g.m.cumLast > g.m.cumCommitted {
		pending = g.m.cumLast - g.m.cumCommitted
	}
	if pending+bytes > uint64(g.c.opts.MaxQueueBytes) {
		return fmt.Errorf("%w: %d bytes waiting + %d > limit %d", ErrQueueFull, pending, bytes, g.c.opts.MaxQueueBytes)
	}
	if g.freeErr != nil {
		return fmt.Errorf("%w: statfs: %v", ErrDiskFull, g.freeErr)
	}
	// Badger's own overhead per entry (keys, state record, value-log
	// headers) is small next to the reserve; the reserve is the margin.
	if g.free < g.c.opts.DiskReserve+g.written+bytes {
		return fmt.Errorf("%w: %d bytes free, reserve %d", ErrDiskFull, g.free, g.c.opts.DiskReserve)
	}
	return nil
}

func (g *groupWrite) write(fresh []freshTx) error {
	for _, f := range fresh {
		if err := g.writeOne(f); err != nil {
			return err
		}
	}
	return nil
}

// writeOne writes a new entry, its state and change-log entry (the
// indexer writes its overlays later), with extra deletions (a retried dead
// letter) alongside. It reserves room for all of them at once: should the
// Badger transaction fill up between them, the part committed then would
// hold entry seq beside counters that say seq-1, and once a later part
// failed, a retry would be answered "stored at seq" while the next new
// transaction took seq over.
func (g *groupWrite) writeOne(f freshTx, deletes ...[]byte) error {
	cum := g.m.cumLast + uint64(len(f.payload))
	qe := badger.NewEntry(seqKey(prefixQueue, f.st.Seq), encodeEntry(entryHeader{cum: cum, acceptedAt: g.now}, f.payload))
	se, err := stateEntry(f.tx.GetId(), f.st, 0)
	var change []byte
	if err == nil {
		change, err = changeValue(f.tx.GetId(), f.st)
	}
	if err == nil {
		es := []*badger.Entry{qe, se}
		for _, k := range deletes {
			es = append(es, &badger.Entry{Key: k})
		}
		n, size := entriesRoom(es)
		_, csize := changeRoom(g.w, change)
		err = g.w.reserveN(n+1, size+csize) // +1: a flush may make the change a record's first
	}
	for _, k := range deletes {
		if err == nil {
			err = g.w.txn.Delete(k)
		}
	}
	if err == nil {
		err = setEntries(g.w.txn, []*badger.Entry{qe, se})
	}
	if err != nil {
		g.fatal = err
		return err
	}
	appendChange(g.w, g.m, change)
	g.m.lastSeq, g.m.cumLast = f.st.Seq, cum
	g.written += uint64(len(f.payload))
	return nil
}

// retry re-enqueues a dead letter under a new seq (same transaction id).
func (g *groupWrite) retry(op *retryOp) (*edgev1.SubmitResult, error) {
	dl, err := getDeadLetter(g.w.txn, op.id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			g.fatal = err
		}
		return nil, err
	}
	tx := dl.GetTransaction()
	if op.edited != nil {
		if op.edited.GetId() != op.id {
			return nil, fmt.Errorf("%w: edited transaction id %q differs from %q", ErrInvalid, op.edited.GetId(), op.id)
		}
		tx = proto.Clone(op.edited).(*opsv1.Transaction)
	}
	if tx == nil {
		return nil, fmt.Errorf("%w: dead letter %s holds no transaction (quarantined); discard it", ErrInvalid, op.id)
	}
	f, err := g.prepare(tx, g.m.lastSeq+1)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := g.fits(uint64(len(f.payload))); err != nil {
		return nil, err
	}
	// The dead letter goes in the same Badger transaction as the new entry.
	if err := g.writeOne(f, idKey(prefixDead, op.id)); err != nil {
		return nil, err
	}
	if g.m.dead > 0 {
		g.m.dead--
	}
	a := f.st.ack(op.id, false)
	g.known[op.id] = a
	return a, nil
}

// fillRecordID gives a mutation a UUIDv7 when the caller left its id empty
// and returns the id.
func fillRecordID(mu *opsv1.Mutation) (string, error) {
	var idp *string
	switch k := mu.GetKind().(type) {
	case *opsv1.Mutation_Observation:
		if k.Observation == nil {
			return "", errors.New("empty observation")
		}
		idp = &k.Observation.Id
	case *opsv1.Mutation_ObservationUpdate:
		if k.ObservationUpdate == nil {
			return "", errors.New("empty observation_update")
		}
		if k.ObservationUpdate.Id == "" {
			return "", errors.New("observation_update.id is required")
		}
		return k.ObservationUpdate.Id, nil
	case *opsv1.Mutation_InstrumentConfig:
		if k.InstrumentConfig == nil {
			return "", errors.New("empty instrument_config")
		}
		idp = &k.InstrumentConfig.Id
	case *opsv1.Mutation_RawDataFile:
		if k.RawDataFile == nil {
			return "", errors.New("empty raw_data_file")
		}
		idp = &k.RawDataFile.Id
	case *opsv1.Mutation_Row:
		if k.Row == nil {
			return "", errors.New("empty row")
		}
		return "", nil // its key is in its values, chosen by the caller
	default:
		return "", errors.New("no kind set")
	}
	if *idp == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return "", err
		}
		*idp = u.String()
	}
	return *idp, nil
}
