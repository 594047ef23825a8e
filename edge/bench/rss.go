package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// backlogChild measures the edge's memory with a backlog of n transactions
// in a process of its own (this program with -backlog), so that nothing
// the other figures allocated counts, and returns the BENCH lines to print:
// the child's backlog_* figures and edge_rss_mib_1m_backlog, its peak
// anonymous RSS (Go heap, Badger's memtable arenas, caches and table
// builders: the memory the edge needs). The child runs under the Go memory
// limit chasqui-edge sets by default (--memory-limit 192 MiB). The
// mmapped Badger files (value log, memtable WALs, tables) add page cache
// to RSS that the kernel reclaims under pressure; that peak is reported as
// edge_rss_total_mib_1m_backlog.
func backlogChild(dir string, n int, memLimit int64) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-backlog", strconv.Itoa(n), "-settle", "2s", "-dir", dir,
		"-memory-limit", strconv.FormatInt(memLimit, 10))
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=") // the flag decides
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -backlog %d: %w\n%s", self, n, err, out.String())
	}
	var lines []string
	figs := map[string]string{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		l := sc.Text()
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "BENCH" {
			lines = append(lines, l)
			figs[f[1]] = f[2]
		}
	}
	anon, total := figs["backlog_peak_rss_anon_mib"], figs["backlog_peak_rss_mib"]
	if anon == "" || total == "" {
		return nil, fmt.Errorf("backlog child printed no RSS figures:\n%s", out.String())
	}
	return append(lines,
		fmt.Sprintf("BENCH edge_rss_mib_1m_backlog %s MiB (peak anonymous RSS, %d tx, Go memory limit %d MiB)", anon, n, memLimit>>20),
		fmt.Sprintf("BENCH edge_rss_total_mib_1m_backlog %s MiB (peak RSS with the mmapped Badger files' page cache)", total),
	), nil
}
