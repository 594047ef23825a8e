// Package pglsn reads and writes PostgreSQL's text form of a write-ahead
// log position ("16/B374D848": the high and low 32 bits in hex), the one
// form central answers with, the replica reports and the tests compare.
package pglsn

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads an LSN in PostgreSQL's text form as a number.
func Parse(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("lsn %q: no slash", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("lsn %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("lsn %q: %w", s, err)
	}
	return h<<32 | l, nil
}

// Format is the inverse of Parse.
func Format(v uint64) string { return fmt.Sprintf("%X/%X", v>>32, uint32(v)) }
