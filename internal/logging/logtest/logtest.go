// Package logtest holds what tests need to look at logs.
package logtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// Buffer is a log sink safe for concurrent writers: hand it to a
// slog handler and read what was logged with String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// JSONLines parses the JSON log lines written so far; err is the first
// line that does not parse (the lines that do are returned all the same).
func (s *Buffer) JSONLines() (lines []map[string]any, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range bytes.Split(s.b.Bytes(), []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		m := map[string]any{}
		if jerr := json.Unmarshal(l, &m); jerr != nil {
			if err == nil {
				err = fmt.Errorf("logtest: %q: %w", l, jerr)
			}
			continue
		}
		lines = append(lines, m)
	}
	return lines, err
}
