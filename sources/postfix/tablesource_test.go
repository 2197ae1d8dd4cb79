package postfix

import (
	"strings"
	"testing"
)

func TestParseTableSource(t *testing.T) {
	// Checked with postmap -s of Postfix 3.7.
	const in = `Example.COM  OK
  # indented comment
  continued
novalue
"Quoted Key" v a l
"esc\"q"  x
dup 1
dup 2
"unterminated x
last	val
`
	got, err := ParseTableSource("tbl", strings.NewReader(in))
	want := []TableKey{
		{"example.com", "OK  continued", pos("tbl", 1)},
		{"quoted key", "v a l", pos("tbl", 5)},
		{`esc"q`, "x", pos("tbl", 6)},
		{"dup", "1", pos("tbl", 7)},
		{"dup", "2", pos("tbl", 8)},
		{"last", "val", pos("tbl", 10)},
	}
	if len(got) != len(want) {
		t.Fatalf("ParseTableSource = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	wantErr := "tbl:4: expected format: key whitespace value: \"novalue\"\ntbl:9: unbalanced '\"' in \"\\\"unterminated x\""
	if err == nil || err.Error() != wantErr {
		t.Errorf("ParseTableSource error = %v, want %q", err, wantErr)
	}
	checkPosErrors(t, err, "tbl", 1)
}
