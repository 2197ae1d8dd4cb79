#!/usr/bin/env bash
# packaging/boot-test/prepare-root.sh ROOT CORPUS_SET: put a corpus set's
# Postfix and Dovecot configuration into the debootstrapped tree ROOT, with
# the owners and modes iRedMail gives them, and lay out nginx as iRedMail
# does (00-default.conf redirecting to HTTPS, 00-default-ssl.conf including
# templates), with the line README.md tells iRedMail admins to add. Runs on
# the host before the container boots, so no daemon runs yet; what needs one
# (the vmail database) is done by checks.sh inside. Called by
# packaging/boot-test.sh, from the repository root.
set -euo pipefail
root=$1
set_dir=$2
[ -d "$root/etc" ] && [ -d "$set_dir/etc" ] || {
	echo "usage: prepare-root.sh ROOT CORPUS_SET" >&2
	exit 2
}

# Postfix: the set's main.cf, master.cf and tables over Debian's (Debian's
# dynamicmaps.cf and postfix-files stay); lookup files root:postfix 0640.
cp -r "$set_dir/etc/postfix/." "$root/etc/postfix/"
chroot "$root" chown -R root:postfix /etc/postfix/mysql
chmod 0750 "$root/etc/postfix/mysql"
chmod 0640 "$root"/etc/postfix/mysql/*.cf
printf 'postmaster: root\nroot: postmaster@example.com\n' >"$root/etc/postfix/aliases"
chroot "$root" postalias /etc/postfix/aliases

# Dovecot: the set's files replace Debian's dovecot.conf (conf.d is then not
# read). iRedMail's virtual mail user owns uid/gid 2000.
cp -r "$set_dir/etc/dovecot/." "$root/etc/dovecot/"
chroot "$root" groupadd --gid 2000 vmail
chroot "$root" useradd --uid 2000 --gid 2000 --no-create-home --home-dir /var/vmail --shell /usr/sbin/nologin vmail
mkdir -p "$root/var/vmail/sieve"
chroot "$root" chown -R vmail:vmail /var/vmail
for f in dovecot-mysql.conf dovecot-used-quota.conf dovecot-share-folder.conf dovecot-last-login.conf dovecot-master-users; do
	chroot "$root" chown root:dovecot "/etc/dovecot/$f"
	chmod 0640 "$root/etc/dovecot/$f"
done
mkdir -p "$root/usr/local/bin"
printf '#!/bin/sh\n# iRedMail sends a quota warning here; nothing to do in this test.\nexit 0\n' >"$root/usr/local/bin/dovecot-quota-warning.sh"
chmod 0755 "$root/usr/local/bin/dovecot-quota-warning.sh"

# Certificates the set names: the certificate public, the key root's alone.
install -m 0644 "$set_dir/etc/ssl/certs/iRedMail.crt" "$root/etc/ssl/certs/iRedMail.crt"
install -m 0600 "$set_dir/etc/ssl/private/iRedMail.key" "$root/etc/ssl/private/iRedMail.key"
install -m 0644 "$set_dir/etc/ssl/dh2048_param.pem" "$set_dir/etc/ssl/dh512_param.pem" "$root/etc/ssl/"

# The host's names, as iRedMail sets them.
echo mail >"$root/etc/hostname"
echo mail.example.com >"$root/etc/mailname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tmail.example.com mail\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# nginx as iRedMail lays it out: sites in sites-available, linked from
# sites-enabled, each server made of templates from /etc/nginx/templates.
# The stand-ins for roundcube.tmpl and misc.tmpl claim /mail/ and
# /.well-known/ with regular-expression locations, as iRedMail's do, so the
# include must come first to work.
include_line=$(awk '/iRedMail.s nginx/ { on = 1 } on && /include \/etc\/nginx\/templates\/mailautoconf/ { sub(/^[ \t]+/, ""); print; exit }' README.md)
if [ -z "$include_line" ]; then
	echo "prepare-root.sh: README.md names no include line for iRedMail's nginx" >&2
	exit 1
fi
echo "    nginx: $include_line   (README.md, iRedMail's nginx)"
rm -f "$root/etc/nginx/sites-enabled/default"
mkdir -p "$root/etc/nginx/templates" "$root/etc/nginx/conf-enabled" "$root/var/www/html"
# iRedMail's nginx.conf replaces Debian's and reads conf-enabled/, not
# conf.d/, in its http block: there the package's upstream for the
# template (mailautoconf_iredmail) is read.
grep -q '^[[:space:]]*include /etc/nginx/conf.d/\*.conf;' "$root/etc/nginx/nginx.conf" || {
	echo "prepare-root.sh: $root/etc/nginx/nginx.conf has no include of conf.d/*.conf to turn into iRedMail's" >&2
	exit 1
}
sed -i 's|^\([[:space:]]*\)include /etc/nginx/conf.d/\*.conf;|\1include /etc/nginx/conf-enabled/*.conf;|' "$root/etc/nginx/nginx.conf"
cat >"$root/etc/nginx/templates/ssl.tmpl" <<-'EOF'
	ssl_protocols TLSv1.2 TLSv1.3;
	ssl_certificate /etc/ssl/certs/iRedMail.crt;
	ssl_certificate_key /etc/ssl/private/iRedMail.key;
EOF
cat >"$root/etc/nginx/templates/misc.tmpl" <<-'EOF'
	# Stand-in for iRedMail's misc.tmpl: it claims /.well-known/.
	location ~ ^/\.well-known/ {
	    return 404 "misc.tmpl\n";
	}
EOF
cat >"$root/etc/nginx/templates/roundcube.tmpl" <<-'EOF'
	# Stand-in for iRedMail's roundcube.tmpl: it claims /mail/.
	location ~ ^/mail(/.*)?$ {
	    return 200 "roundcube\n";
	}
EOF
cat >"$root/etc/nginx/templates/redirect_to_https.tmpl" <<-'EOF'
	location / {
	    return 301 https://$host$request_uri;
	}
EOF
cat >"$root/etc/nginx/sites-available/00-default.conf" <<-'EOF'
	server {
	    listen 80;
	    server_name _;
	    include /etc/nginx/templates/misc.tmpl;
	    include /etc/nginx/templates/redirect_to_https.tmpl;
	}
EOF
cat >"$root/etc/nginx/sites-available/00-default-ssl.conf" <<-EOF
	server {
	    listen 443 ssl;
	    server_name _;
	    root /var/www/html;
	    index index.html;
	    include /etc/nginx/templates/ssl.tmpl;
	    # Added by the admin, as README.md says (above iRedMail's includes):
	    $include_line
	    include /etc/nginx/templates/misc.tmpl;
	    include /etc/nginx/templates/roundcube.tmpl;
	}
EOF
ln -sf ../sites-available/00-default.conf "$root/etc/nginx/sites-enabled/00-default.conf"
ln -sf ../sites-available/00-default-ssl.conf "$root/etc/nginx/sites-enabled/00-default-ssl.conf"
echo 'iRedMail web root' >"$root/var/www/html/index.html"
