package domainname

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"Example.COM", "example.com", ""},
		{"bücher.example", "xn--bcher-kva.example", ""},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example", ""},
		{"ALL", "", "has a single label; a mail domain has at least two"},
		{"localhost", "", "has a single label; a mail domain has at least two"},
		{"a..b", "", "has an empty label (two dots in a row, or a dot at an end)"},
		{"-a.example", "", "has a label that starts or ends with a hyphen"},
		{"a_b.example", "", `contains '_'`},
		{"[127.0.0.1]", "", "is an address literal; use the mail domain"},
		{"", "", "is empty"},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("Normalize(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("Normalize(%q) error = %v, want %q", tt.in, err, tt.err)
		}
	}
}
