package discover

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
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

// checkSigning fills in each Certificate's SignProblem, KeyCopy, Staged
// and SelfSigned, and warns when no certificate can sign Apple profiles.
// It runs after chooseHostnames: a certificate must cover the host name.
func (b *builder) checkSigning() {
	all := append(append([]*loadedCert{}, b.pfCerts...), b.dcCerts...)
	svc := b.serviceAccount()
	host := b.snap.hostname
	for i := range b.snap.certs {
		c, lc := &b.snap.certs[i], all[i]
		c.SelfSigned = lc.SelfSigned()
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
		default:
			c.SignProblem = certProblem(lc.Cert, host, b.opt.Now, c.CertCopy != "")
		}
	}
	if _, why := b.snap.ProfileSigning(); why != "" {
		b.warn("Apple profiles are served unsigned (iOS and macOS show them as not verified): %s", why)
	}
}

// certProblem says why the certificate cannot sign Apple profiles for
// host at now ("" when it can); staged says it was read from the copy
// staged at the last start or reload.
func certProblem(c *certs.Cert, host string, now time.Time, staged bool) string {
	switch leaf := c.Leaf; {
	case !c.Covers(host):
		return fmt.Sprintf("it does not cover the host name %s", host)
	case now.After(leaf.NotAfter) && staged:
		return fmt.Sprintf("it expired on %s (the copy staged at the last start or reload: if it was renewed since, systemctl reload mailautoconf stages the renewed one)", leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.After(leaf.NotAfter):
		return fmt.Sprintf("it expired on %s", leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		return fmt.Sprintf("it is not valid before %s", leaf.NotBefore.UTC().Format(time.DateOnly))
	}
	return ""
}

// noCopyStaged ends the reason of a key this process may not read.
const noCopyStaged = ", and no copy is staged: restart or reload mailautoconf (its ExecStartPre=+ and ExecReload=+ run mailautoconf stage-keys as root to copy it)"

// checkKey says why the key of c cannot sign ("" when it can), reading
// the staged copy when this process may not read the key itself (and
// setting c.KeyCopy), and, for root's view, what the service user will
// read (note).
func (b *builder) checkKey(c *Certificate, lc *loadedCert, svc *keystage.Account) (problem, note string) {
	if c.KeyPath == "" {
		return "no private key is configured for it", ""
	}
	_, err := readKey(b.opt.Root, c.KeyPath, lc.Leaf)
	switch {
	case errors.Is(err, fs.ErrPermission):
		cp, ok := b.manifest().Copy(c.KeyPath)
		if !ok {
			return fmt.Sprintf("private key %v", withHint(err)) + noCopyStaged, ""
		}
		if _, problem := readKeyCopy(b.opt.Root, c.KeyPath, cp, lc.Leaf); problem != "" {
			return problem, ""
		}
		c.KeyCopy = cp
		return "", fmt.Sprintf("private key: this process (uid %d) cannot read it; it reads the copy %s", os.Geteuid(), cp)
	case err != nil:
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
		return "private key: " + why + noCopyStaged, ""
	}
	if _, problem := readKeyCopy(b.opt.Root, c.KeyPath, cp, lc.Leaf); problem != "" {
		return problem, ""
	}
	return "", fmt.Sprintf("private key: %s; the daemon reads the copy %s", why, cp)
}

// readKey reads the key file at host path p and returns its key for leaf.
func readKey(root hostfs.Root, p string, leaf *x509.Certificate) (crypto.Signer, error) {
	data, err := root.ReadRegular(p, certs.MaxFileSize)
	if err != nil {
		return nil, err
	}
	return certs.MatchingKey(p, data, leaf)
}

// readKeyCopy reads cp, the staged copy of the key file keyPath, and
// returns its key for leaf, or why it cannot sign with leaf.
func readKeyCopy(root hostfs.Root, keyPath, cp string, leaf *x509.Certificate) (crypto.Signer, string) {
	data, err := keystage.ReadCopy(root, cp)
	if err != nil {
		return nil, fmt.Sprintf("private key %s: its staged copy: %v (reload mailautoconf to stage it again)", keyPath, err)
	}
	key, err := certs.MatchingKey(cp, data, leaf)
	if err != nil {
		// Staged before a renewal: never sign with a key that is not
		// the certificate's; the next reload stages the new one.
		return nil, fmt.Sprintf("private key %s: its staged copy %s does not match the certificate (renewed since it was staged?): reload mailautoconf to stage it again", keyPath, cp)
	}
	return key, ""
}

// ProfileSigning returns the certificate Apple profiles are signed with,
// or why none can sign: the reason for each certificate. Of those that
// can, one a CA issued comes first (a profile signed with it shows as
// "Verified"; a self-signed one only proves the bytes intact), then the
// one valid longest. It is the one decision: show, check and STATUS
// report it, and mobileconfig.NewSigner signs with it (LoadSigningPair).
func (s *Snapshot) ProfileSigning() (Certificate, string) {
	var (
		best    Certificate
		found   bool
		reasons []string
		seen    = map[[2]string]bool{}
	)
	for _, c := range s.certs {
		if seen[[2]string{c.Path, c.KeyPath}] {
			continue // Postfix and Dovecot often share one
		}
		seen[[2]string{c.Path, c.KeyPath}] = true
		if c.SignProblem != "" {
			reasons = append(reasons, fmt.Sprintf("certificate %s: %s", c.Path, c.SignProblem))
			continue
		}
		// NotAfter is RFC 3339 in UTC: ordered as a string.
		if !found || (best.SelfSigned && !c.SelfSigned) || (best.SelfSigned == c.SelfSigned && c.NotAfter > best.NotAfter) {
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

// LoadSigningPair reads the certificate and key that c, as ProfileSigning
// chose it, names: the staged copies the Snapshot was built from, if any
// (this process may not read the originals). It checks them again at now
// for host, with the reasons ProfileSigning gives: a Snapshot restored at a
// restart may outlive its certificate or its staged copy. The error reads
// "certificate <path>: <reason>".
func LoadSigningPair(root hostfs.Root, c Certificate, host string, now time.Time) (*certs.Cert, crypto.Signer, error) {
	cert, err := loadCertOrCopy(root, c)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", c.Path, err)
	}
	problem := certProblem(cert, strings.ToLower(strings.TrimSuffix(host, ".")), now, c.CertCopy != "")
	if problem == "" && c.KeyPath == "" {
		problem = "no private key is configured for it"
	}
	if problem != "" {
		return nil, nil, fmt.Errorf("certificate %s: %s", c.Path, problem)
	}
	var key crypto.Signer
	if c.KeyCopy != "" {
		key, problem = readKeyCopy(root, c.KeyPath, c.KeyCopy, cert.Leaf)
	} else if key, err = readKey(root, c.KeyPath, cert.Leaf); err != nil {
		problem = fmt.Sprintf("private key %v", withHint(err))
		if errors.Is(err, fs.ErrPermission) {
			problem += noCopyStaged
		}
	}
	if problem != "" {
		return nil, nil, fmt.Errorf("certificate %s: %s", c.Path, problem)
	}
	return cert, key, nil
}

// loadCertOrCopy reads the certificate c names, from the staged copy when
// the Snapshot was built from that one.
func loadCertOrCopy(root hostfs.Root, c Certificate) (*certs.Cert, error) {
	if c.CertCopy == "" {
		return certs.Load(root, c.Path)
	}
	data, err := keystage.ReadCopy(root, c.CertCopy)
	if err != nil {
		return nil, fmt.Errorf("its staged copy: %w (reload mailautoconf to stage it again)", err)
	}
	return certs.Parse(c.Path, data)
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
	b := newBuilder(opt)
	dcErr, err := b.readConfig()
	if err != nil {
		return nil, nil, err
	}
	b.loadCertificates()
	if dcErr != nil {
		return b.snap.certs, b.snap.warnings, fmt.Errorf("%w: %w", ErrIncomplete, dcErr)
	}
	return b.snap.certs, b.snap.warnings, nil
}
