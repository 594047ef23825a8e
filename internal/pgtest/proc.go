package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat holds the fields of /proc/<pid>/stat this package needs.
type procStat struct {
	state byte
	ppid  int
	pgrp  int
	// start is the process start time in clock ticks after boot. Pids are
	// reused; a (pid, start) pair names one process for the life of the
	// machine, which is what lets a run directory name its owner.
	start uint64
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields we want follow its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, errors.New("short /proc stat")
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, err
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, err
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, err
	}
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp, start: start}, nil
}

// proc names one process for the life of the machine (pids are reused).
type proc struct {
	pid   int
	start uint64
}

// childrenOf lists the live children of pid.
func childrenOf(pid int) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []proc
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(p); err == nil && st.ppid == pid && st.state != 'Z' && st.state != 'X' {
			kids = append(kids, proc{pid: p, start: st.start})
		}
	}
	return kids
}

// alive reports whether p still runs (the same process, not a zombie).
func (p proc) alive() bool {
	st, err := readProcStat(p.pid)
	return err == nil && st.start == p.start && st.state != 'Z' && st.state != 'X'
}

// groupAlive reports whether a live (non-zombie) process is left in process
// group pgid. Zombies count as gone: they hold no shared memory, and orphaned
// backends may stay zombies for good where PID 1 does not reap (containers).
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.pgrp != pgid {
			continue
		}
		if st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}
