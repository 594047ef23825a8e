// Package pgtest owns the real PostgreSQL that Chasqui's tests run against:
// finding the server binaries, starting throwaway clusters (and streaming
// replicas) as child processes, crashing and restarting them on request,
// cleaning up clusters that a killed test binary left behind, and handing
// each test its own database cloned from a template migrated once per test
// binary.
//
// Two kinds of cluster exist. The shared cluster serves [NewDatabase]: it is
// the server named by DATABASE_URL when that is set, otherwise a cluster this
// package starts lazily on first use and stops in [Main]. Tests that stop,
// crash or reconfigure PostgreSQL use a cluster of their own from
// [StartCluster], even when DATABASE_URL is set, so they never disturb other
// tests.
//
// A test binary wires the package in with
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Clusters live under os.TempDir()/chasqui-pgtest-<uid>/run-<pid>-<start>/,
// one run directory per test process, named after that process so that a
// later run can tell it is dead and remove what it left. Each cluster
// directory holds data/ (PGDATA), sock/ (the Unix socket) and postgres.log
// (the server's stdout and stderr). The log sits beside the data directory,
// not in it, so that pg_basebackup does not copy a primary's log into its
// replica.
//
// Running as root, the server binaries run as the postgres user, because
// initdb and postgres refuse to run as root. PostgreSQL 13 or newer is
// needed (DROP DATABASE ... WITH (FORCE)).
package pgtest
