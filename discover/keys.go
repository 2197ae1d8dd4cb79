package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/keystage"
)

// The files a process that cannot read a certificate or its key reads
// instead: the copies "mailautoconf stage-keys" made as root (package
// keystage). Each Certificate says whether its key can sign Apple
// profiles (SignProblem) and, when the service user needs a staged copy,
// which (Staged) — as the daemon sees it, also when root runs show.

// manifest returns the staged copies' manifest, read once per Build.
func (b *builder) manifest() *keystage.Manifest {
	if b.staged == nil {
		dir := b.opt.StagedKeys
		if dir == "" {
			dir = keystage.Dir
		}
		b.read(dir + "/" + keystage.ManifestName)
		m, err := keystage.ReadManifest(b.opt.Root, dir)
		if err != nil {
			b.warn("staged copies of the certificates and keys cannot be used: %v", withHint(err))
		}
		b.staged = m
	}
	return b.staged
}

// loadCertFile reads the certificate file at host path p, or its staged
// copy when this process may not read p. copyPath is the copy's host path
// when the copy was read.
func (b *builder) loadCertFile(p string) (c *certs.Cert, copyPath string, err error) {
	c, err = certs.Load(b.opt.Root, p)
	if !errors.Is(err, fs.ErrPermission) {
		return c, "", err
	}
	cp, ok := b.manifest().Copy(p)
	if !ok {
		return nil, "", err
	}
	data, cerr := keystage.ReadCopy(b.opt.Root, cp)
	if cerr != nil {
		return nil, "", fmt.Errorf("%w; its staged copy: %w", err, cerr)
	}
	c, cerr = certs.Parse(p, data)
	if cerr != nil {
		// Both wrapped: a key-only file of smtpd_tls_chain_files stays
		// quiet (certs.ErrNoCertificate) with its copy as without.
		return nil, "", fmt.Errorf("%w; its staged copy %s: %w", err, cp, cerr)
	}
	return c, cp, nil
}

// serviceAccount returns the service user when this process runs as
// another user (root running show or check) and the host has it: then
// what that user can read is worth telling. nil otherwise, and when this
// process is the daemon (Options.Serving): it signs with what it reads.
func (b *builder) serviceAccount() *keystage.Account {
	if b.opt.Serving {
		return nil
	}
	name := b.opt.ServiceUser
	if name == "" {
		name = keystage.DefaultUser
	}
	a, err := keystage.LookupAccount(b.opt.Root, name)
	if err != nil || a.UID == os.Geteuid() {
		return nil
	}
	return a
}

// checkSigning fills in each Certificate's SignProblem, KeyCopy and
// Staged, and warns when no certificate can sign Apple profiles. It runs
// after chooseHostnames: a certificate must cover the host name.
func (b *builder) checkSigning() {
	all := append(append([]*loadedCert{}, b.pfCerts...), b.dcCerts...)
	svc := b.serviceAccount()
	host := b.snap.hostname
	for i := range b.snap.certs {
		c, lc := &b.snap.certs[i], all[i]
		var notes []string
		if svc != nil && c.CertCopy == "" {
			if ok, why, _ := keystage.CanRead(b.opt.Root, c.Path, svc); !ok && why != "" {
				if cp, ok := b.manifest().Copy(c.Path); ok {
					notes = append(notes, fmt.Sprintf("certificate: %s; the daemon reads the copy %s", why, cp))
				} else {
					c.SignProblem = fmt.Sprintf("%s, and no copy is staged: restart or reload mailautoconf (its ExecStartPre=+ and ExecReload=+ run mailautoconf stage-keys as root)", why)
				}
			}
		}
		keyProblem, note := b.checkKey(c, lc, svc)
		if note != "" {
			notes = append(notes, note)
		}
		c.Staged = strings.Join(notes, "; ")
		switch {
		case c.SignProblem != "":
		case keyProblem != "":
			c.SignProblem = keyProblem
		case !lc.Covers(host):
			c.SignProblem = fmt.Sprintf("it does not cover the host name %s", host)
		case b.opt.Now.After(lc.Leaf.NotAfter):
			c.SignProblem = fmt.Sprintf("it expired on %s", lc.Leaf.NotAfter.UTC().Format(time.DateOnly))
			if c.CertCopy != "" {
				c.SignProblem += " (the copy staged at the last start or reload: if it was renewed since, systemctl reload mailautoconf stages the renewed one)"
			}
		case b.opt.Now.Before(lc.Leaf.NotBefore):
			c.SignProblem = fmt.Sprintf("it is not valid before %s", lc.Leaf.NotBefore.UTC().Format(time.DateOnly))
		}
	}
	if _, why := b.snap.ProfileSigning(); why != "" {
		b.warn("Apple profiles are served unsigned (iOS and macOS show them as not verified): %s", why)
	}
}

// checkKey says why the key of c cannot sign ("" when it can), reading
// the staged copy when this process may not read the key itself (and
// setting c.KeyCopy), and, for root's view, what the service user will
// read (note).
func (b *builder) checkKey(c *Certificate, lc *loadedCert, svc *keystage.Account) (problem, note string) {
	if c.KeyPath == "" {
		return "no private key is configured for it", ""
	}
	data, err := b.opt.Root.ReadRegular(c.KeyPath, certs.MaxFileSize)
	switch {
	case errors.Is(err, fs.ErrPermission):
		cp, ok := b.manifest().Copy(c.KeyPath)
		if !ok {
			return fmt.Sprintf("private key %v, and no copy is staged: restart or reload mailautoconf (its ExecStartPre=+ and ExecReload=+ run mailautoconf stage-keys as root to copy it)", withHint(err)), ""
		}
		if problem := b.checkCopy(c.KeyPath, cp, lc); problem != "" {
			return problem, ""
		}
		c.KeyCopy = cp
		return "", fmt.Sprintf("private key: this process (uid %d) cannot read it; it reads the copy %s", os.Geteuid(), cp)
	case err != nil:
		return fmt.Sprintf("private key %v", err), ""
	}
	if _, err := certs.MatchingKey(c.KeyPath, data, lc.Leaf); err != nil {
		return fmt.Sprintf("private key %v", err), ""
	}
	if svc == nil {
		return "", ""
	}
	ok, why, _ := keystage.CanRead(b.opt.Root, c.KeyPath, svc)
	if ok || why == "" {
		return "", ""
	}
	cp, staged := b.manifest().Copy(c.KeyPath)
	if !staged {
		return fmt.Sprintf("private key: %s, and no copy is staged: restart or reload mailautoconf (its ExecStartPre=+ and ExecReload=+ run mailautoconf stage-keys as root to copy it)", why), ""
	}
	if problem := b.checkCopy(c.KeyPath, cp, lc); problem != "" {
		return problem, ""
	}
	return "", fmt.Sprintf("private key: %s; the daemon reads the copy %s", why, cp)
}

// checkCopy says why the staged copy cp of the key file keyPath cannot
// sign with the certificate ("" when it can).
func (b *builder) checkCopy(keyPath, cp string, lc *loadedCert) string {
	data, err := keystage.ReadCopy(b.opt.Root, cp)
	if err != nil {
		return fmt.Sprintf("private key %s: its staged copy: %v (reload mailautoconf to stage it again)", keyPath, err)
	}
	if _, err := certs.MatchingKey(cp, data, lc.Leaf); err != nil {
		return fmt.Sprintf("private key %s: its staged copy %s does not match the certificate (renewed since it was staged?): reload mailautoconf to stage it again", keyPath, cp)
	}
	return ""
}

// ProfileSigning returns a certificate that can sign Apple profiles (the
// one valid longest), or why none can: the reason for each certificate.
func (s *Snapshot) ProfileSigning() (Certificate, string) {
	var (
		best    Certificate
		found   bool
		reasons []string
		seen    = map[[2]string]bool{}
	)
	for _, c := range s.certs {
		if seen[[2]string{c.Path, c.KeyPath}] {
			continue
		}
		seen[[2]string{c.Path, c.KeyPath}] = true
		if c.SignProblem != "" {
			reasons = append(reasons, fmt.Sprintf("certificate %s: %s", c.Path, c.SignProblem))
			continue
		}
		if !found || c.NotAfter > best.NotAfter {
			best, found = c, true
		}
	}
	if found {
		return best, ""
	}
	if len(reasons) == 0 {
		return Certificate{}, "Postfix and Dovecot name no certificate that can be read"
	}
	return Certificate{}, strings.Join(reasons, "; ")
}

// ErrIncomplete is wrapped by the error of Certificates when Dovecot's
// configuration cannot be read: the certificates returned are Postfix's.
var ErrIncomplete = errors.New("only Postfix's certificates are known")

// Certificates returns the certificates Postfix and Dovecot name, with
// their key files, and the warnings met reading them. It reads their
// configuration and those certificates only: no database, no domain
// table. "mailautoconf stage-keys" runs it as root. When Dovecot's
// configuration cannot be read, it returns Postfix's certificates and an
// error wrapping ErrIncomplete and Dovecot's error: a broken dovecot.conf
// at a restart must not leave the daemon without the keys it signs with.
func Certificates(opt Options) ([]Certificate, []string, error) {
	opt.certificatesOnly = true
	var dcErr error
	opt.dovecotErr = &dcErr
	s, err := Build(context.Background(), opt)
	if err != nil {
		return nil, nil, err
	}
	if dcErr != nil {
		return s.certs, s.warnings, fmt.Errorf("%w: %w", ErrIncomplete, dcErr)
	}
	return s.certs, s.warnings, nil
}
