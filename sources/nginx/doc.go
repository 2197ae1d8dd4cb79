// Package nginx reads an nginx configuration as nginx does and tells
// where it proxies the SOGo groupware: CalDAV/CardDAV under /SOGo/dav/,
// Exchange ActiveSync at /Microsoft-Server-ActiveSync, and the
// /.well-known/caldav and carddav redirects.
//
// [Read] follows the main file's include directives through a
// [hostfs.Root], so a copy of a host's /etc reads as the host's own
// (--root). Its tokenizer is nginx's (ngx_conf_read_token in
// src/core/ngx_conf_file.c): blanks separate words, '#' comments run to
// the end of the line, "..." and '...' quote, a backslash escapes the next
// character (\t, \r and \n become control characters), ';' ends a
// directive and braces enclose blocks, which must balance in every file.
// $variables stay text. Relative include paths start at the directory of
// the main file (nginx's conf prefix); a glob may match nothing and its
// matches are read in byte order. [Config.Dump] prints the files in the
// form of "nginx -T", and the tests compare the two byte for byte.
//
// [Config.FindGroupware] then walks every server with a TLS listen and
// asks, as nginx's location search would answer a request: which location
// handles each SOGo path, whether it proxies it (proxy_pass, through an
// upstream block or not) to a loopback address, and what the .well-known
// paths redirect to. Every finding carries the file:line of the
// directive it rests on; a path not served says why ([Vhost.Missing]).
//
// Read's error wraps [ErrNoConfig] when the main file is absent (no nginx
// on the host), so a source can tell "not configured" from "broken".
// Positions name host paths. Errors print as "file:line: message"
// ([hostfs.PosError]). The package never logs.
package nginx
