package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// installHint is the command a developer or CI needs when the server
// binaries are missing; error messages quote it verbatim.
const installHint = "apt-get update && apt-get install -y postgresql"

// findBinDir returns the directory holding initdb, postgres, pg_ctl and
// pg_basebackup: pg_config's answer when that has them, else the newest
// /usr/lib/postgresql/<version>/bin. pg_config alone is not enough: on Debian
// /usr/bin/pg_config may come from libpq-dev and name a directory without a
// server in it.
func findBinDir() (string, error) { return findBinDirIn("/usr/lib/postgresql/*/bin") }

func findBinDirIn(debianGlob string) (string, error) {
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			if dir := strings.TrimSpace(string(out)); hasServer(dir) {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob(debianGlob)
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[i])), filepath.Base(filepath.Dir(dirs[j])))
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if hasServer(dirs[i]) {
			return dirs[i], nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found: " +
		"neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has them; " +
		"install them with: " + installHint)
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres", "pg_ctl", "pg_basebackup"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionLess orders directory names like "9.6", "10" and "15" numerically,
// which a string sort gets wrong.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errX := strconv.Atoi(as[i])
		y, errY := strconv.Atoi(bs[i])
		if errX != nil || errY != nil {
			return a < b
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// osUser is the account the server binaries run as.
type osUser struct {
	cred     *syscall.Credential // nil: run as ourselves
	uid, gid int
}

// serverUser is the postgres user when we are root (initdb and postgres
// refuse root), and ourselves otherwise.
func serverUser() (osUser, error) {
	if os.Geteuid() != 0 {
		return osUser{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return osUser{}, fmt.Errorf("pgtest: running as root, which PostgreSQL refuses, and there is no postgres user to run it as (%w); "+
			"install PostgreSQL with: %s (it creates the user), or run the tests as a non-root user", err, installHint)
	}
	uid, errU := strconv.Atoi(u.Uid)
	gid, errG := strconv.Atoi(u.Gid)
	if errU != nil || errG != nil {
		return osUser{}, fmt.Errorf("pgtest: postgres user has non-numeric uid %q or gid %q", u.Uid, u.Gid)
	}
	// Groups left empty drops root's supplementary groups in the child.
	return osUser{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}, nil
}

// command prepares name to run as u in dir.
func (u osUser) command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	// Pdeathsig: an initdb or pg_basebackup must not outlive a killed test
	// binary either.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// chown hands path to u, so that a server running as postgres can use a
// directory we created as root.
func (u osUser) chown(path string) error {
	if u.cred == nil {
		return nil
	}
	return os.Lchown(path, u.uid, u.gid)
}

// serverEnv is our environment without PG* variables: a developer's PGDATA,
// PGPORT or PGHOST must not point pg_ctl or pg_basebackup elsewhere.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}
