package render

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

// qrRun is one run of dark modules in QRCodeSVG's path.
var qrRun = regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`)

// rasterQR draws the SVG QRCodeSVG wrote as a PNG, scale pixels a module,
// from its viewBox and path alone.
func rasterQR(t *testing.T, svg []byte, scale int) string {
	t.Helper()
	m := regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`).FindSubmatch(svg)
	if m == nil {
		t.Fatalf("no viewBox in %s", svg)
	}
	side, _ := strconv.Atoi(string(m[1]))
	img := image.NewGray(image.Rect(0, 0, side*scale, side*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	runs := qrRun.FindAllSubmatch(svg, -1)
	if len(runs) == 0 {
		t.Fatalf("no modules in %s", svg)
	}
	for _, r := range runs {
		x, _ := strconv.Atoi(string(r[1]))
		y, _ := strconv.Atoi(string(r[2]))
		n, _ := strconv.Atoi(string(r[3]))
		for px := x * scale; px < (x+n)*scale; px++ {
			for py := y * scale; py < (y+1)*scale; py++ {
				img.SetGray(px, py, color.Gray{})
			}
		}
	}
	p := filepath.Join(t.TempDir(), "qr.png")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestQRCodeSVG decodes the QR codes with ZBar (Debian zbar-tools), a
// decoder independent of the encoder.
func TestQRCodeSVG(t *testing.T) {
	zbar := testtool.Need(t, "zbarimg")
	for _, text := range []string{
		"https://autoconfig.example.net/mobileconfig?emailaddress=fred%40example.net",
		"https://autoconfig.xn--bcher-kva.example/mobileconfig?emailaddress=%22a%3Cb%3E%26%22%40xn--bcher-kva.example",
		"https://autoconfig.example.net/mobileconfig?emailaddress=" + strings.Repeat("x", 64) + "%40" + strings.Repeat("long-label.", 20) + "example",
	} {
		svg, err := QRCodeSVG(text)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := QRCodeSVG(text); string(again) != string(svg) {
			t.Errorf("QRCodeSVG(%q) differs between calls", text)
		}
		out, err := exec.Command(zbar, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", rasterQR(t, svg, 4)).Output()
		if err != nil {
			t.Fatalf("zbarimg: %v (%s)", err, out)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != text {
			t.Errorf("zbarimg reads %q, want %q", got, text)
		}
	}
	// A code that cannot hold the text fails instead of writing garbage.
	if _, err := QRCodeSVG(strings.Repeat("x", 5000)); err == nil {
		t.Error("QRCodeSVG of 5000 bytes: no error")
	}
}

// TestProfileQR: the settings page's QR code, put in its hole by
// AppendQR, reads (with ZBar) as the profile link the page shows, made
// absolute; Append leaves the hole empty.
func TestProfileQR(t *testing.T) {
	zbar := testtool.Need(t, "zbarimg")
	s := buildRoot(t, corpusDir+"/handmade-static-domains", sqltable.Options{})
	page, err := PageSettings(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []Address{
		{Local: "fred", Domain: "example.net", LoginDomain: "example.net"},
		{Local: `"a<b>& c"`, Domain: "xn--bcher-kva.example", LoginDomain: "xn--bcher-kva.example"},
	} {
		qr, err := ProfileQR(a)
		if err != nil {
			t.Fatal(err)
		}
		with := page.AppendQR(nil, a, qr)
		without := page.Append(nil, a)
		if !bytes.Contains(with, qr) || bytes.Contains(without, []byte("<svg")) ||
			!bytes.Equal(bytes.Replace(with, qr, nil, 1), without) {
			t.Errorf("AppendQR does not put the QR code in the hole, or only there")
		}
		doc, err := html.Parse(bytes.NewReader(with))
		if err != nil {
			t.Fatal(err)
		}
		var link string
		for _, n := range nodes(doc, "a") {
			if strings.HasPrefix(attr(n, "href"), "/mobileconfig?") {
				link = attr(n, "href")
			}
		}
		svgs := nodes(doc, "svg")
		if len(svgs) != 1 || link == "" {
			t.Fatalf("page for %s: %d svg elements, profile link %q", a, len(svgs), link)
		}
		want := "https://autoconfig." + a.Domain + link
		if ProfileURL(a) != want {
			t.Errorf("ProfileURL(%s) = %q, want the page's link %q", a, ProfileURL(a), want)
		}
		out, err := exec.Command(zbar, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", rasterQR(t, qr, 4)).Output()
		if err != nil {
			t.Fatalf("zbarimg: %v (%s)", err, out)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != want {
			t.Errorf("the page's QR code reads %q, want %q", got, want)
		}
		u, err := url.Parse(want)
		if err != nil || u.Query().Get("emailaddress") != a.String() {
			t.Errorf("profile URL %q does not carry %s", want, a)
		}
	}
}
