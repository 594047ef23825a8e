package pglsn

import "testing"

func TestParseAndFormat(t *testing.T) {
	for s, want := range map[string]uint64{"0/0": 0, "0/16B3748": 0x16B3748, "16/B374D848": 0x16_B374D848, "FFFFFFFF/FFFFFFFF": 1<<64 - 1} {
		got, err := Parse(s)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %x, %v; want %x", s, got, err, want)
		}
		if f := Format(want); f != s {
			t.Errorf("Format(%x) = %q, want %q", want, f, s)
		}
	}
	for _, bad := range []string{"", "16", "G/1", "1/G", "100000000/0", "0/100000000", "-1/0"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}
