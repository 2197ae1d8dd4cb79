package testtool

import (
	"os/exec"
	"strings"
	"testing"
)

func TestAsUser(t *testing.T) {
	NeedRoot(t, "setpriv changes the user")
	for _, tt := range []struct {
		gids []int
		want string // id's output: uid, gid, then the group list (gid first)
	}{
		{nil, "65534 65534 65534"},
		{[]int{4242, 4243}, "65534 65534 65534 4242 4243"},
	} {
		argv := append(AsUser(t, 65534, tt.gids...), "sh", "-c", `echo $(id -u) $(id -g) $(id -G)`)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tt.want {
			t.Errorf("%q = %q, %v; want %q", argv, got, err, tt.want)
		}
	}
}
