// Package dovecot turns a Dovecot configuration tree (dovecot.conf and
// everything it includes) into the answer to "which listeners are open to mail
// clients, and with what TLS and authentication policy?".
//
// It reads the files the way Dovecot's config process does (doveconf -x
// semantics) for both the 2.3 syntax and the 2.4 syntax that starts with
// dovecot_config_version:
//
//   - "key = value", quoted values ("..." or '...' with \ escapes), # comments
//     outside quotes, and lines continued with a trailing backslash;
//   - "key = <file" (the file's contents; certificate and key paths are kept
//     as paths and never opened), and 2.4's "key = <<MARKER" here-documents;
//   - "key = $key more" (a setting extended with its own earlier value),
//     "$name" of another setting in 2.3 and "$SET:name" in 2.4;
//   - !include and !include_try with globs and {a,b} braces, relative to the
//     including file's directory, with include loops reported;
//   - sections: service / inet_listener, the protocol, local, remote and
//     local_name filters, 2.4's boolean lists ("protocols { imap = yes }"),
//     the ssl_server named filter and settings groups ("group @name value { }"
//     included by "@name = value", below the settings made where included);
//     any other section is parsed and ignored. A 2.4 service's "listen" is
//     the default of its inet_listeners'.
//
// Load returns a Config: the global settings with Dovecot's built-in defaults
// filled in (Setting, ProtocolSetting), the values that decide what clients
// see (Effective) and every inet_listener of the login services (Listeners),
// defaults included, as doveconf -a prints them.
//
// Debian builds Dovecot with an empty default for protocols (each
// dovecot-*d package adds its protocol through
// /usr/share/dovecot/protocols.d); Load uses that default when the host looks
// like Debian and the upstream "imap pop3 lmtp" otherwise.
package dovecot
