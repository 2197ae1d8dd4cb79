package dovecot

import (
	"errors"
	"strings"
)

// defaultValue is Dovecot's built-in default of a setting this package reads.
// ok is false for settings it does not know.
func defaultValue(version string, debian bool, key string) (v string, ok bool) {
	v24 := is24(version)
	switch key {
	case "protocols":
		if v24 || debian {
			return "", true // 2.4: none; Debian 2.3: added by protocols.d
		}
		return "imap pop3 lmtp", true
	case "listen":
		return "*, ::", true
	case "ssl":
		return "yes", true
	case "disable_plaintext_auth":
		if v24 {
			return "", false
		}
		return "yes", true
	case "auth_allow_cleartext":
		if !v24 {
			return "", false
		}
		return "no", true
	case "auth_mechanisms":
		return "plain", true
	case "auth_username_format":
		if v24 {
			return "%{user | lower}", true
		}
		return "%Lu", true
	case "submission_relay_host", "ssl_cert", "ssl_key", "ssl_server_cert_file", "ssl_server_key_file",
		"hostname", "dovecot_config_version", "dovecot_storage_version":
		return "", true
	case "submission_relay_port":
		return "25", true
	}
	return "", false
}

// A defaultListener is an inet_listener Dovecot creates without being told.
type defaultListener struct {
	service, name string
	port          int
	ssl           bool
}

// loginServices maps each login service to the protocol that enables it.
var loginServices = map[string]string{
	"imap-login":        "imap",
	"pop3-login":        "pop3",
	"submission-login":  "submission",
	"managesieve-login": "sieve",
}

// defaultListeners returns the inet_listeners doveconf -a shows for an empty
// configuration (managesieve-login when Pigeonhole is installed).
func defaultListeners(version string) []defaultListener {
	l := []defaultListener{
		{"imap-login", "imap", 143, false},
		{"imap-login", "imaps", 993, true},
		{"managesieve-login", "sieve", 4190, false},
		{"pop3-login", "pop3", 110, false},
		{"pop3-login", "pop3s", 995, true},
		{"submission-login", "submission", 587, false},
	}
	if is24(version) {
		l = append(l, defaultListener{"submission-login", "submissions", 465, true})
	}
	return l
}

// parseBool reads a boolean as Dovecot's settings parser does.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "y", "1":
		return true, nil
	case "no":
		return false, nil
	}
	return false, errors.New("invalid boolean value " + quote(v) + " (use yes or no)")
}

func quote(s string) string { return `"` + s + `"` }

// splitList splits a space- or comma-separated list.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
}
