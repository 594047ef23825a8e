// Package proccpu reads CPU time from Linux's /proc for the benchmarks:
// the bench process's own, and a server's with its children (PostgreSQL's
// postmaster and backends, or a central process), so that CPU per unit of
// work can be set beside the floor measured in the same run.
package proccpu

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Self is the CPU time (user + system) of this process so far.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Tree is the CPU time (user + system) of process pid and of its live
// children. With match, only of those whose command line holds it (a
// PostgreSQL backend's title is "postgres: user db host state"). It is 0
// for pid <= 0 or when /proc cannot be read.
func Tree(pid int, match string) time.Duration {
	if pid <= 0 {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	p := strconv.Itoa(pid)
	var ticks uint64
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 || (e.Name() != p && f[1] != p) {
			continue
		}
		if match != "" {
			cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !bytes.Contains(cmd, []byte(match)) {
				continue
			}
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		s, _ := strconv.ParseUint(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
