package lookupkey

import "testing"

func TestFold(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Example.CH", "example.ch", true},
		{"ÄBC.com", "äbc.com", true},
		{"x", "x", true},
		{"Straße", "strasse", true},
		{"ΣΑΣ", "σασ", true},
		{"İ", "i\u0307", true},
		{"ﬁ", "fi", true},
		{"ꭰᎠ", "ᎠᎠ", true},
		{"Ꭰ", "Ꭰ", true},
		{"ꭰ", "Ꭰ", true},
		{"K", "k", true}, // the Kelvin sign
		// Keys Postfix never looks up, folded all the same.
		{"\xffA", "\xffa", false},
		{"\xff", "\xff", false},
		{"a\x00B", "a\x00b", false},
		{"Ä\x00", "ä\x00", false},
	}
	for _, tt := range tests {
		if got, ok := Fold(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("Fold(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFoldASCII(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Example.CH", "example.ch", true},
		{"ÄBC.com", "Äbc.com", true},
		{"Straße", "straße", true},
		{"\xffA", "\xffa", false},
		{"\xff", "\xff", false},
		{"a\x00B", "a\x00b", false},
	}
	for _, tt := range tests {
		if got, ok := FoldASCII(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("FoldASCII(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
