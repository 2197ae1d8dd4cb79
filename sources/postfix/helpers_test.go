package postfix

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// testConfig builds a Config from main.cf and master.cf text, on a machine
// named "vm".
func testConfig(t *testing.T, mainCF, masterCF string) *Config {
	t.Helper()
	m, err := ParseMainCF("main.cf", strings.NewReader(mainCF))
	if err != nil {
		t.Fatalf("ParseMainCF: %v", err)
	}
	s, err := ParseMasterCF("master.cf", strings.NewReader(masterCF))
	if err != nil {
		t.Fatalf("ParseMasterCF: %v", err)
	}
	return &Config{dir: "/etc/postfix", main: m, services: s, hostname: "vm"}
}

// checkPosErrors fails unless every error joined in err is a
// *hostfs.PosError in file at a line >= minLine.
func checkPosErrors(t *testing.T, err error, file string, minLine int) {
	t.Helper()
	if err == nil {
		return
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	for _, e := range list {
		var pe *hostfs.PosError
		if !errors.As(e, &pe) || pe.Pos.File != file || pe.Pos.Line < minLine {
			t.Fatalf("error without a position in %s at line >= %d: %v", file, minLine, e)
		}
	}
}

func pos(file string, line int) hostfs.Pos { return hostfs.Pos{File: file, Line: line} }
