package ldaptable

import (
	"os/exec"
	"testing"
)

func TestZZDebug(t *testing.T) {
	s := datasetServer(t)
	text := "server_host = " + s.URL() + "\nbind = no\nsearch_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=late))\nresult_attribute = title\nleaf_result_attribute = description\nspecial_result_attribute = seeAlso\n"
	tb := openCF(t, text, Options{})
	for _, k := range []string{"group1", "group3", "user"} {
		a, err := lookupAnswer(tb, k)
		cf := writeCF(t, t.TempDir(), "x.cf", text)
		out, _ := exec.Command("postmap", "-q", k, "ldap:"+cf).CombinedOutput()
		t.Logf("%s: ours %q %v postmap %q", k, a, err, out)
	}
	out, _ := exec.Command("ldapsearch", "-LLL", "-x", "-H", s.URL(), "-b", keysBase, "(|(cn=group1)(cn=late)(cn=user)(cn=group5)(cn=x.y)(cn=group3))", "uid").CombinedOutput()
	t.Logf("%s", out)
}
