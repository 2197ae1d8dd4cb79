package sogotest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// iRedMail's values in sogo.tmpl that point at the harness instead.
const (
	iredmailBackend   = "127.0.0.1:20000"
	iredmailTemplates = "/etc/nginx/templates/"
)

// nginxDir is the nginx prefix and configuration directory in h.dir.
func (h *Host) nginxDir() string { return filepath.Join(h.dir, "nginx") }

// writeTLS makes a throwaway CA and a certificate for ServerName (and
// 127.0.0.1) signed by it, for nginx.
func (h *Host) writeTLS(t testing.TB) {
	t.Helper()
	dir := h.nginxDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sogotest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: h.ServerName},
		DNSNames:     []string{h.ServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h.CACert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	h.CAFile = filepath.Join(h.dir, "ca.pem")
	files := map[string][]byte{
		h.CAFile:                      h.CACert,
		filepath.Join(dir, "tls.crt"): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		filepath.Join(dir, "tls.key"): pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(h.CAFile, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeTemplate writes the harness's copy of iRedMail's sogo.tmpl (and
// the hsts.tmpl it includes), its backend and template directory pointed
// at the harness; easOff comments out the
// "location ^~ /Microsoft-Server-ActiveSync" block.
func (h *Host) writeTemplate(easOff bool) error {
	src := templatePath()
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("iRedMail's sogo.tmpl: %w", err)
	}
	tmpl := string(b)
	if !strings.Contains(tmpl, iredmailBackend) || !strings.Contains(tmpl, iredmailTemplates) {
		return fmt.Errorf("%s: no %s or %s to point at the harness", src, iredmailBackend, iredmailTemplates)
	}
	templates := filepath.Join(h.nginxDir(), "templates")
	tmpl = strings.ReplaceAll(tmpl, iredmailBackend, h.Backend)
	tmpl = strings.ReplaceAll(tmpl, iredmailTemplates, templates+"/")
	if easOff {
		if tmpl, err = commentOutBlock(tmpl, "location ^~ /Microsoft-Server-ActiveSync {"); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	hsts, err := os.ReadFile(filepath.Join(filepath.Dir(src), "hsts.tmpl"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(templates, 0o755); err != nil {
		return err
	}
	h.Template = filepath.Join(templates, "sogo.tmpl")
	if err := os.WriteFile(filepath.Join(templates, "hsts.tmpl"), hsts, 0o644); err != nil {
		return err
	}
	return os.WriteFile(h.Template, []byte(tmpl), 0o644)
}

// commentOutBlock puts "#" before the line that starts with head and every
// line up to the one closing its block.
func commentOutBlock(conf, head string) (string, error) {
	lines := strings.SplitAfter(conf, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), head) {
			continue
		}
		depth := 0
		for j := i; j < len(lines); j++ {
			depth += strings.Count(lines[j], "{") - strings.Count(lines[j], "}")
			lines[j] = "#" + lines[j]
			if depth == 0 {
				return strings.Join(lines, ""), nil
			}
		}
		return "", fmt.Errorf("block %q not closed", head)
	}
	return "", fmt.Errorf("no block %q", head)
}

// writeNginxConf writes nginx's main configuration: one HTTPS server on
// addr that includes the template.
func (h *Host) writeNginxConf(addr string) error {
	dir := h.nginxDir()
	h.NginxConf = filepath.Join(dir, "nginx.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "html"), 0o755); err != nil {
		return err
	}
	mime := filepath.Join(filepath.Dir(templatePath()), "..", "mime.types")
	userLine := ""
	if h.cred != nil {
		userLine = "user " + strconv.Itoa(int(h.cred.Uid)) + " " + strconv.Itoa(int(h.cred.Gid)) + ";\n"
		if u, g := lookupNames(h.cred.Uid, h.cred.Gid); u != "" {
			userLine = "user " + u + " " + g + ";\n"
		}
	}
	conf := "# Written by sogotest: one HTTPS server with iRedMail's sogo.tmpl.\n" +
		userLine +
		"worker_processes 1;\n" +
		"pid " + filepath.Join(dir, "nginx.pid") + ";\n" +
		"error_log " + filepath.Join(dir, "error.log") + " info;\n" +
		"events { worker_connections 128; }\n" +
		"http {\n" +
		"    include " + mime + ";\n" +
		"    default_type application/octet-stream;\n" +
		"    access_log " + filepath.Join(dir, "access.log") + ";\n" +
		"    client_body_temp_path " + filepath.Join(dir, "tmp", "body") + ";\n" +
		"    proxy_temp_path " + filepath.Join(dir, "tmp", "proxy") + ";\n" +
		"    fastcgi_temp_path " + filepath.Join(dir, "tmp", "fastcgi") + ";\n" +
		"    uwsgi_temp_path " + filepath.Join(dir, "tmp", "uwsgi") + ";\n" +
		"    scgi_temp_path " + filepath.Join(dir, "tmp", "scgi") + ";\n" +
		"    server {\n" +
		"        listen " + addr + " ssl;\n" +
		"        server_name " + h.ServerName + ";\n" +
		"        ssl_certificate " + filepath.Join(dir, "tls.crt") + ";\n" +
		"        ssl_certificate_key " + filepath.Join(dir, "tls.key") + ";\n" +
		"        root " + filepath.Join(dir, "html") + ";\n" +
		"        include " + h.Template + ";\n" +
		"    }\n" +
		"}\n"
	return os.WriteFile(h.NginxConf, []byte(conf), 0o644)
}

// startNginxAt writes the configuration for addr and starts nginx in the
// foreground (master as the current user, workers as h.cred).
func (h *Host) startNginxAt(addr string) (*proc, error) {
	if err := h.writeNginxConf(addr); err != nil {
		return nil, err
	}
	dir := h.nginxDir()
	return h.spawn("nginx", filepath.Join(dir, "error.log"), nil,
		h.nginxBin, "-p", dir+"/", "-c", h.NginxConf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
}

// lookupNames returns the names of user uid and group gid, or "" when
// either has none.
func lookupNames(uid, gid uint32) (string, string) {
	u, err := user.LookupId(strconv.Itoa(int(uid)))
	if err != nil {
		return "", ""
	}
	g, err := user.LookupGroupId(strconv.Itoa(int(gid)))
	if err != nil {
		return "", ""
	}
	return u.Username, g.Name
}
