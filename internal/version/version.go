// Package version holds the release version and commit of the binaries.
// Release builds stamp both with the linker:
//
//	go build -ldflags "-X github.com/chasqui/chasqui/internal/version.Version=v1.2.3 \
//	    -X github.com/chasqui/chasqui/internal/version.Commit=0123abcd" ...
//
// scripts/dist.sh and the Dockerfile do this; a plain `go build` leaves the
// defaults, and Commit then falls back to the VCS revision Go embeds when it
// builds inside a git checkout.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is the release version (`git describe --tags --always --dirty`).
// It is a var, not a const, so that -ldflags -X can set it.
var Version = "dev"

// Commit is the git commit the binary was built from.
var Commit = ""

// Revision is Commit, or the VCS revision recorded in the build info when
// Commit was not stamped, or "unknown".
func Revision() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

// String is the one-line version shown by --version and in status:
// "v1.2.3 (commit 0123abcd, go1.26.8)".
func String() string {
	return Version + " (commit " + Revision() + ", " + runtime.Version() + ")"
}
