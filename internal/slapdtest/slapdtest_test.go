package slapdtest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

func TestMain(m *testing.M) { Main(m) }

const corpusSet = "../../testdata/corpus/iredmail-openldap-debian12"

// search runs ldapsearch as the corpus's lookup DN and returns its output.
func search(t *testing.T, uri, base, filter string, attrs ...string) (string, error) {
	t.Helper()
	tool := testtool.Need(t, "ldapsearch")
	args := append([]string{"-LLL", "-o", "ldif-wrap=no", "-x", "-H", uri,
		"-D", "cn=vmail,dc=example,dc=com", "-w", "secret", "-b", base, filter}, attrs...)
	out, err := exec.Command(tool, args...).CombinedOutput()
	return string(out), err
}

func TestCorpusServer(t *testing.T) {
	s := Shared(t, Corpus(corpusSet))
	for _, uri := range []string{s.URL(), s.LDAPI()} {
		out, err := search(t, uri, "o=domains,dc=example,dc=com", "(domainName=shop.example.net)", "domainName")
		if err != nil {
			t.Fatalf("ldapsearch %s: %v\n%s", uri, err, out)
		}
		if !strings.Contains(out, "domainName: Shop.Example.NET") {
			t.Errorf("ldapsearch %s = %q, want the seeded Shop.Example.NET", uri, out)
		}
	}
	if Shared(t, Corpus(corpusSet)) != s {
		t.Errorf("Shared started a second server for the same Config")
	}
	if s.RootDN() != "cn=Manager,dc=example,dc=com" || s.RootPW() != "secret-root" {
		t.Errorf("root = %q/%q, want the corpus config's", s.RootDN(), s.RootPW())
	}
}

func TestStopStartKeepsAddressAndData(t *testing.T) {
	abs, _ := filepath.Abs(corpusSet)
	s := Start(t, Corpus(abs))
	s.Add(t, "dn: domainName=added.example,o=domains,dc=example,dc=com\nobjectClass: mailDomain\ndomainName: added.example\n")
	url := s.URL()
	s.Stop(t)
	if out, err := search(t, url, "o=domains,dc=example,dc=com", "(domainName=added.example)"); err == nil {
		t.Fatalf("ldapsearch on a stopped server succeeded: %s", out)
	}
	s.Start(t)
	if s.URL() != url {
		t.Errorf("restarted on %s, want %s", s.URL(), url)
	}
	out, err := search(t, url, "o=domains,dc=example,dc=com", "(domainName=added.example)", "domainName")
	if err != nil || !strings.Contains(out, "domainName: added.example") {
		t.Errorf("after restart: %v\n%s", err, out)
	}
}

func TestDefaultTemplate(t *testing.T) {
	s := Start(t, Config{})
	s.Add(t, "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n")
	tool := testtool.Need(t, "ldapsearch")
	out, err := exec.Command(tool, "-LLL", "-x", "-H", s.URL(), "-b", "dc=example,dc=com", "-s", "base", "(objectClass=*)", "dc").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dc: example") {
		t.Errorf("anonymous ldapsearch: %v\n%s", err, out)
	}
}
