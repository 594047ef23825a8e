package proccpu

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A busy child shows up in its parent's tree; a match no process holds
// counts nothing.
func TestTreeCountsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done")
	require.NoError(t, cmd.Start())
	pid := os.Getpid()
	require.Eventually(t, func() bool { return Tree(pid, "") > Self() }, 60*time.Second, 20*time.Millisecond,
		"the child's CPU is not counted in the tree")
	require.Zero(t, Tree(pid, "no process has this in its command line"))
	require.Zero(t, Tree(0, ""))
	require.NoError(t, cmd.Wait())
}
