package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

// runCLI runs the chasqui binary against the stack's edge and returns its
// stdout, stderr and exit code.
func runCLI(t *testing.T, s *Stack, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := binaryPath(t, "chasqui")
	cmd := exec.Command(bin, append([]string{"--addr", s.Edge.Addr(), "--timeout", "30s"}, args...)...)
	cmd.Env = childEnv()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return o.String(), e.String(), code
}

func waitRejected(t *testing.T, s *Stack, txID string) {
	t.Helper()
	Eventually(t, commitTimeout, "tx "+txID+" rejected", func() bool {
		return txState(t, s, txID) == edgev1.TransactionState_TRANSACTION_STATE_REJECTED
	})
}

// Dead letters end to end with the chasqui CLI against a real stack
// (guarantee 6): poison transactions (raw data files of an observation
// that does not exist) are rejected by PostgreSQL, listed with their reason,
// shown, one retried with an edited body under a new seq (it commits), the
// other discarded; the counts follow in `chasqui status`; a good
// transaction after them flows on.
func TestDeadLettersViaCLI(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	good, obs := newID(), newID()
	submit(t, s, insertObs(good, obs))
	// Raw data files of observations that do not exist.
	poison1, poison2 := fixture.Tx(fixture.File(newID(), 1024)), fixture.Tx(fixture.File(newID(), 1024))
	p1, f1 := poison1.GetId(), poison1.GetMutations()[0].GetRawDataFile().GetId()
	p2, f2 := poison2.GetId(), poison2.GetMutations()[0].GetRawDataFile().GetId()
	var seqP1 uint64
	for _, tx := range []*opsv1.Transaction{poison1, poison2} {
		r := submit(t, s, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}}).GetResults()[0]
		if tx.Id == p1 {
			seqP1 = r.GetSeq()
		}
	}
	after := newID()
	submit(t, s, insertObs(after, newID()))
	waitRejected(t, s, p1)
	waitRejected(t, s, p2)
	waitCommitted(t, s, after) // the queue flows on past the poison

	out, errOut, code := runCLI(t, s, "deadletters", "list")
	t.Logf("chasqui deadletters list:\n%s", out)
	require.Equal(t, 0, code, errOut)
	for _, id := range []string{p1, p2} {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, id) {
				line = l
			}
		}
		require.NotEmpty(t, line, "dead letter %s listed", id)
		require.Contains(t, line, "23503", "listed with the foreign-key SQLSTATE")
	}

	out, errOut, code = runCLI(t, s, "--json", "status")
	require.Equal(t, 0, code, errOut)
	var st edgev1.GetStatusResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &st), out)
	require.Equal(t, uint64(2), uint64(st.GetDeadLetters()), "status counts the dead letters")
	out, _, code = runCLI(t, s, "status")
	require.Equal(t, 0, code)
	require.Regexp(t, `dead letters\s+2`, out)
	require.Regexp(t, `central link\s+reachable \(last answer 20`, out, "central answered its commits: the link shows")

	out, errOut, code = runCLI(t, s, "--json", "deadletters", "show", p1)
	require.Equal(t, 0, code, errOut)
	var dl edgev1.DeadLetter
	require.NoError(t, protojson.Unmarshal([]byte(out), &dl), out)
	require.Equal(t, p1, dl.GetTransaction().GetId())
	require.NotEmpty(t, dl.GetReason())

	// Fix p1: point its file at the observation that exists.
	poison1.GetMutations()[0].GetRawDataFile().ObservationId = obs
	edited, err := protojson.Marshal(poison1)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "edited.json")
	require.NoError(t, os.WriteFile(file, edited, 0o644))
	out, errOut, code = runCLI(t, s, "deadletters", "retry", p1, "-f", file)
	t.Logf("chasqui deadletters retry: %s", out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "re-enqueued "+p1)
	st1 := waitCommitted(t, s, p1)
	require.Greater(t, st1.GetSeq(), seqP1, "retried under a new seq")
	require.Equal(t, 1, countRows(t, s, `SELECT count(*) FROM chasqui.raw_data_files WHERE id = $1 AND observation_id = $2`, f1, obs))

	out, errOut, code = runCLI(t, s, "deadletters", "discard", p2)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "discarded "+p2)
	out, _, code = runCLI(t, s, "deadletters", "show", p2)
	require.Equal(t, 4, code, "a discarded dead letter is not found: %s", out)

	Eventually(t, 30*time.Second, "status shows no dead letters", func() bool {
		out, _, code := runCLI(t, s, "--json", "status")
		var st edgev1.GetStatusResponse
		return code == 0 && protojson.Unmarshal([]byte(out), &st) == nil && st.GetDeadLetters() == 0
	})
	out, _, _ = runCLI(t, s, "deadletters", "list")
	require.NotContains(t, out, p1)
	require.NotContains(t, out, p2)
	require.Zero(t, countRows(t, s, `SELECT count(*) FROM chasqui.raw_data_files WHERE id = $1`, f2))
}
