package postfix

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// Config is a Postfix configuration directory as the daemons see it: main.cf
// over the built-in defaults, and the master.cf services with their -o
// overrides. It is immutable after Load and safe for concurrent use.
type Config struct {
	root     hostfs.Root
	dir      string
	main     *MainCF
	services []Service // every master.cf service, all types
	hostname string    // the machine's host name, for the myhostname default
}

// hostname returns the machine's host name; tests replace it.
var hostname = os.Hostname

// Load reads dir/main.cf and dir/master.cf (dir is a host path, normally
// "/etc/postfix", "/opt/postfix/conf" for mailcow) under root. The
// config_directory default is dir. Inet service port names are resolved with
// root's /etc/services when it can be read, else with built-in IANA names.
//
// The myhostname default is the machine's host name (os.Hostname) with
// ".$mydomain" (or ".localdomain") appended when it has no dot, as Postfix
// does; when reading a copy of another host's files, set myhostname in its
// main.cf.
func Load(root hostfs.Root, dir string) (*Config, error) {
	dir = path.Clean(dir)
	mainPath := path.Join(dir, "main.cf")
	data, err := readHostFile(root, mainPath)
	if err != nil {
		return nil, err
	}
	m, err := ParseMainCF(mainPath, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	masterPath := path.Join(dir, "master.cf")
	data, err = readHostFile(root, masterPath)
	if err != nil {
		return nil, err
	}
	port := builtinPort
	if b, err := root.ReadFile("/etc/services"); err == nil {
		table := parseServices(string(b))
		port = func(name string) (int, bool) {
			if p, ok := table[name]; ok {
				return p, true
			}
			return builtinPort(name)
		}
	}
	services, err := parseMasterCF(masterPath, bytes.NewReader(data), port)
	if err != nil {
		return nil, err
	}
	h, _ := hostname()
	return &Config{root: root, dir: dir, main: m, services: services, hostname: h}, nil
}

// readHostFile reads p under root; a permission error says how to fix it.
func readHostFile(root hostfs.Root, p string) ([]byte, error) {
	b, err := root.ReadFile(p)
	if err != nil {
		if hint := hostfs.PermissionHint(err); hint != "" {
			return nil, fmt.Errorf("%w (%s)", err, hint)
		}
		return nil, err
	}
	return b, nil
}

// Dir returns the host path of the configuration directory Load read.
func (c *Config) Dir() string { return c.dir }

// Root returns the root the configuration was read under.
func (c *Config) Root() hostfs.Root { return c.root }

// Main returns main.cf as parsed.
func (c *Config) Main() *MainCF { return c.main }

// Warnings returns the problems Postfix only warns about in main.cf.
func (c *Config) Warnings() []error { return c.main.Warnings }

// Param returns the value of a main.cf parameter with every $name expanded
// and whitespace runs collapsed to one space, as "postconf -x" prints it,
// and the main.cf line where it is set (the zero Pos for a built-in
// default). An undefined parameter is "". Expansion problems (a loop, a
// malformed ${...}) yield the best-effort value; Expand reports them.
func (c *Config) Param(name string) (value string, pos hostfs.Pos) {
	v := collapseSpace(c.expander(nil).top(name))
	if s, ok := c.main.Lookup(name); ok {
		pos = s.Pos
	}
	return v, pos
}

// ParamErr is Param that also reports a problem expanding the value (a
// loop, a malformed ${...}), which Postfix treats as fatal when the
// parameter is used.
func (c *Config) ParamErr(name string) (value string, pos hostfs.Pos, err error) {
	e := c.expander(nil)
	value = collapseSpace(e.top(name))
	if s, ok := c.main.Lookup(name); ok {
		pos = s.Pos
	}
	if e.err != nil {
		err = fmt.Errorf("%s: expand %s: %w", pos, name, e.err)
	}
	return value, pos, err
}

// ServiceParam returns the value of a parameter for the daemon of service s:
// its -o overrides over main.cf over the defaults, with $names expanded in
// that context (an -o value can use a main.cf parameter, and a main.cf value
// sees the service's -o settings, as Postfix does). pos is where the value
// was set: the -o line, the main.cf line, or the zero Pos.
func (c *Config) ServiceParam(s Service, name string) (value string, pos hostfs.Pos) {
	v := collapseSpace(c.expander(&s).top(name))
	if o, ok := s.Override(name); ok {
		return v, o.Pos
	}
	if st, ok := c.main.Lookup(name); ok {
		pos = st.Pos
	}
	return v, pos
}

// Expand expands the $names in text in main.cf's context and reports
// malformed expressions and loops.
func (c *Config) Expand(text string) (string, error) {
	e := c.expander(nil)
	v := e.expand(text)
	return v, e.err
}

// ExpandService is Expand in the context of service s.
func (c *Config) ExpandService(s Service, text string) (string, error) {
	e := c.expander(&s)
	v := e.expand(text)
	return v, e.err
}

// rawParams are expanded by the daemons only when used, with run-time
// values ($home, $rbl_code, ...); "postconf -x" prints them unexpanded.
var rawParams = map[string]bool{
	"command_execution_directory": true, "default_rbl_reply": true, "forward_path": true,
	"luser_relay": true, "mailbox_command": true, "postscreen_expansion_filter": true,
	"postscreen_reject_footer": true, "smtpd_expansion_filter": true, "smtpd_reject_footer": true,
}

// top returns the value of a parameter asked for by name: expanded, except
// for the raw parameters.
func (e *expander) top(name string) string {
	if rawParams[name] {
		v, _ := e.lookup(name)
		return v
	}
	return e.param(name)
}

// expander returns an expander for main.cf, or for service s when not nil.
// A service's daemon also knows its service_name and process_name.
func (c *Config) expander(s *Service) *expander {
	e := newExpander(func(name string) (string, bool) {
		if s != nil {
			if o, ok := s.Override(name); ok {
				return o.Value, true
			}
			switch name {
			case "service_name":
				return s.Name, true
			case "process_name":
				return path.Base(s.Command), true
			}
		}
		if st, ok := c.main.Lookup(name); ok {
			return st.Value, true
		}
		if name == "config_directory" {
			return c.dir, true
		}
		v, ok := builtinDefaults[name]
		return v, ok
	})
	e.fallback = c.derivedDefault
	return e
}

// derivedDefault computes the defaults Postfix derives at run time.
func (c *Config) derivedDefault(e *expander, name string) (string, bool) {
	switch name {
	case "myhostname":
		h := c.hostname
		if h == "" {
			h = "localhost"
		}
		if strings.Contains(h, ".") {
			return h, true
		}
		if _, ok := e.lookup("mydomain"); ok {
			return h + "." + e.param("mydomain"), true
		}
		return h + ".localdomain", true
	case "mydomain":
		h := e.param("myhostname")
		if i := strings.IndexByte(h, '.'); i >= 0 {
			return h[i+1:], true
		}
		return "localdomain", true
	}
	return c.transportDefault(name)
}

// transportSuffixes are the per-transport queue manager parameters Postfix
// creates for each delivery service of master.cf ("dovecot" gets
// dovecot_destination_concurrency_limit = $default_destination_concurrency_limit).
var transportSuffixes = map[string]string{
	"delivery_slot_cost":                          "$default_delivery_slot_cost",
	"delivery_slot_discount":                      "$default_delivery_slot_discount",
	"delivery_slot_loan":                          "$default_delivery_slot_loan",
	"destination_concurrency_failed_cohort_limit": "$default_destination_concurrency_failed_cohort_limit",
	"destination_concurrency_limit":               "$default_destination_concurrency_limit",
	"destination_concurrency_negative_feedback":   "$default_destination_concurrency_negative_feedback",
	"destination_concurrency_positive_feedback":   "$default_destination_concurrency_positive_feedback",
	"destination_rate_delay":                      "$default_destination_rate_delay",
	"destination_recipient_limit":                 "$default_destination_recipient_limit",
	"extra_recipient_limit":                       "$default_extra_recipient_limit",
	"initial_destination_concurrency":             "$initial_destination_concurrency",
	"minimum_delivery_slots":                      "$default_minimum_delivery_slots",
	"recipient_limit":                             "$default_recipient_limit",
	"recipient_refill_delay":                      "$default_recipient_refill_delay",
	"recipient_refill_limit":                      "$default_recipient_refill_limit",
	"transport_rate_delay":                        "$default_transport_rate_delay",
}

// deliveryAgents are the commands whose services are mail transports.
var deliveryAgents = map[string]bool{"smtp": true, "lmtp": true, "pipe": true, "local": true, "virtual": true, "error": true}

// transportDefault returns the default of a per-transport parameter
// ("<service>_<suffix>"), expanded, for the delivery services of master.cf;
// pipe(8) and spawn(8) services also get <service>_time_limit.
func (c *Config) transportDefault(name string) (string, bool) {
	for _, s := range c.services {
		suffix, ok := strings.CutPrefix(name, s.Name+"_")
		if !ok || s.Type == "inet" {
			continue
		}
		cmd := path.Base(s.Command)
		if d, ok := transportSuffixes[suffix]; ok && deliveryAgents[cmd] {
			return c.expander(nil).expand(d), true
		}
		if suffix == "time_limit" && (cmd == "pipe" || cmd == "spawn") {
			return c.expander(nil).expand("$command_time_limit"), true
		}
	}
	return "", false
}

// Services returns every master.cf service of type inet, in file order.
func (c *Config) Services() []Service {
	var out []Service
	for _, s := range c.services {
		if s.Type == "inet" {
			out = append(out, s)
		}
	}
	return out
}

// AllServices returns every master.cf service, of all types, in file order.
func (c *Config) AllServices() []Service { return append([]Service(nil), c.services...) }

var errNotBool = errors.New("not a boolean")

// parseBool reads a Postfix boolean: "yes" or "no", any case.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, errNotBool
}
