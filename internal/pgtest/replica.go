package pgtest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// ReplicaOptions configures a streaming replica.
type ReplicaOptions struct {
	// Name labels the replica's directory. Default "replica".
	Name string
	// Slot, when set, names a physical replication slot that pg_basebackup
	// creates on the primary and the replica streams through, so the primary
	// keeps WAL the replica has not received yet. Default none.
	Slot string
	// ExtraConf lines are appended to the replica's postgresql.conf, which
	// starts as a copy of the primary's. Default none.
	ExtraConf []string
}

// NewReplica makes a hot-standby streaming replica of c with pg_basebackup
// (-R -X stream) over TCP and starts it on a port of its own. The caller
// must Close it; tests use StartReplica instead.
func (c *Cluster) NewReplica(opts ReplicaOptions) (*Cluster, error) {
	name := opts.Name
	if name == "" {
		name = "replica"
	}
	r, err := prepareCluster(filepath.Dir(c.dir), name)
	if err != nil {
		return nil, err
	}
	// -R writes primary_conninfo (host, port, user of this very command) and
	// standby.signal. The primary's pg_hba.conf, written by initdb with
	// --auth=trust, trusts replication connections from 127.0.0.1.
	args := []string{
		"-h", c.host, "-p", strconv.Itoa(c.port), "-U", "postgres",
		"-D", r.dataDir, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
	}
	if opts.Slot != "" {
		args = append(args, "-C", "-S", opts.Slot)
	}
	if out, err := r.user.command(r.dir, filepath.Join(r.binDir, "pg_basebackup"), args...).CombinedOutput(); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("pgtest: pg_basebackup of %s into %s: %w\n%s", c.name, r.name, err, out)
	}
	if err := r.appendConf(opts.ExtraConf); err != nil {
		_ = r.Close()
		return nil, err
	}
	if err := r.launch(true); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// StartReplica is NewReplica for tests: it fails t on error and closes the
// replica when t ends. Cleanups run last-in first-out, so a replica started
// after its primary is closed before it.
func (c *Cluster) StartReplica(t testing.TB, opts ReplicaOptions) *Cluster {
	t.Helper()
	r, err := c.NewReplica(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}
