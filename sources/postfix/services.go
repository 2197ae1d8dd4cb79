package postfix

import (
	"strconv"
	"strings"
)

// builtinPorts are the IANA TCP port names a master.cf service name is
// likely to use, for hosts whose /etc/services cannot be read.
var builtinPorts = map[string]int{
	"smtp": 25, "mail": 25,
	"submission":  587,
	"submissions": 465, "smtps": 465, "ssmtp": 465, "urd": 465,
	"lmtp": 24,
	"qmtp": 209,
	"pop3": 110, "pop-3": 110,
	"pop3s": 995,
	"imap":  143, "imap2": 143,
	"imaps": 993,
	"sieve": 4190,
	"http":  80, "www": 80,
	"https":  443,
	"ftp":    21,
	"ssh":    22,
	"domain": 53,
	"ident":  113, "auth": 113,
	"nntp":       119,
	"ldap":       389,
	"ldaps":      636,
	"mysql":      3306,
	"postgresql": 5432,
}

func builtinPort(name string) (int, bool) {
	p, ok := builtinPorts[name]
	return p, ok
}

// parseServices reads the TCP entries of an /etc/services file
// (services(5)): "name port/protocol aliases... # comment". The first entry
// of a name wins, as getservbyname(3) does.
func parseServices(data string) map[string]int {
	ports := map[string]int{}
	for _, line := range strings.Split(data, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		num, proto, ok := strings.Cut(f[1], "/")
		if !ok || proto != "tcp" {
			continue
		}
		p, err := strconv.Atoi(num)
		if err != nil || p < 1 || p > 65535 {
			continue
		}
		for _, n := range append([]string{f[0]}, f[2:]...) {
			if _, dup := ports[n]; !dup {
				ports[n] = p
			}
		}
	}
	return ports
}
