// Package apache reads an Apache httpd configuration as httpd does and
// tells where it proxies the SOGo groupware: CalDAV/CardDAV under
// /SOGo/dav/ and Exchange ActiveSync at /Microsoft-Server-ActiveSync.
//
// [Read] starts at a [Layout]'s main file (Debian's
// /etc/apache2/apache2.conf, Red Hat's /etc/httpd/conf/httpd.conf; [Find]
// picks the one present) and reads through a [hostfs.Root], so a copy of
// a host's /etc reads as the host's own (--root). It splits lines as
// ap_cfg_getline does (a trailing backslash continues a line, a comment
// line too), words as ap_getword_conf does ("..." and '...' quote, \" and
// \\ escape), and runs what httpd runs while it reads: Include and
// IncludeOptional (relative to ServerRoot; a glob's matches in byte
// order, hidden files only for a pattern starting with '.'; a directory
// read whole, hidden files included; a glob matching nothing or a missing
// file is an error for Include only), LoadModule, Define and UnDefine,
// ${VAR} (from Define, then the variables Debian's envvars exports; an
// unknown one stays as text, with a note), <IfModule> against the
// modules loaded so far and [StaticModules], <IfDefine>, <IfFile>, and
// <IfVersion> when httpd 2.4's answer does not depend on the patch level.
// <IfDirective>, <IfSection> and undecidable <IfVersion> sections are
// skipped with a note. Directive names are matched without regard to
// case. [Config.DumpIncludes] prints the files in the form of
// "apache2 -t -D DUMP_INCLUDES" and [Config.VirtualHosts] lists the
// virtual hosts as "apache2 -S" does; the tests compare both with the
// real apache2, and errors name the file and line apache2 names.
//
// [Config.FindGroupware] then walks every virtual host on port 443 or
// with SSLEngine on and asks, as httpd's translate_name phase would
// answer a request: do the server context's RewriteRules ([P] proxies;
// [R], [F], [G] answer; a rule under RewriteCond or that rewrites the
// path elsewhere is undecided), the ProxyPass of the <Location> or
// <LocationMatch> sections matching the path (the last one wins), or the
// server's ProxyPass and ProxyPassMatch list (the main server's first,
// then the virtual host's; the first match wins, "!" excludes) hand the
// path to a backend, and which one. A routing differential test runs the
// real apache2 in front of a recording backend and checks each answer.
// Whatever cannot be told from the files alone (a variable in the
// target, a regular expression Go's regexp cannot read, ProxyPassInherit
// Off, which httpd 2.4.71 does not honour as documented, proxying inside
// <If>) is reported in [Vhost.Missing] or Notes with its file:line,
// never guessed.
//
// Read's error wraps [ErrNoConfig] when the main file is absent (no
// httpd on the host). Positions name host paths. Errors print as
// "file:line: message" ([hostfs.PosError]). The package never logs.
package apache
