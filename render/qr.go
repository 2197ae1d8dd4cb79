package render

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/mailautoconf/mailautoconf/render/qrcode"
)

// qrQuiet is the quiet zone around a QR code, in modules (ISO/IEC 18004
// asks for four).
const qrQuiet = 4

// QRCodeSVG returns text (a URL) as a QR code in an inline SVG element:
// error correction level M or better (package qrcode), black modules on a
// white square with the quiet zone, one path of horizontal runs, scaled by
// the page (viewBox in modules, shape-rendering crispEdges). The bytes
// depend on text alone.
//
// Encoding costs some 250 µs, so a document renders it once, not per
// request.
func QRCodeSVG(text string) ([]byte, error) {
	code, err := qrcode.Encode([]byte(text), qrcode.M)
	if err != nil {
		return nil, fmt.Errorf("render: QR code of %d bytes: %w", len(text), err)
	}
	n := code.Size
	side := strconv.Itoa(n + 2*qrQuiet)
	b := make([]byte, 0, 4096)
	b = append(b, `<svg xmlns="http://www.w3.org/2000/svg" class="qr" viewBox="0 0 `+side+` `+side+
		`" width="200" height="200" shape-rendering="crispEdges" role="img" aria-label="QR code">`...)
	b = append(b, `<rect width="`+side+`" height="`+side+`" fill="#fff"/><path fill="#000" d="`...)
	for y := 0; y < n; y++ {
		for x := 0; x < n; {
			if !code.Dark(x, y) {
				x++
				continue
			}
			run := 1
			for x+run < n && code.Dark(x+run, y) {
				run++
			}
			// M<x> <y>h<run>v1h-<run>z
			b = strconv.AppendInt(append(b, 'M'), int64(x+qrQuiet), 10)
			b = strconv.AppendInt(append(b, ' '), int64(y+qrQuiet), 10)
			b = strconv.AppendInt(append(b, 'h'), int64(run), 10)
			b = strconv.AppendInt(append(b, "v1h-"...), int64(run), 10)
			b = append(b, 'z')
			x += run
		}
	}
	return append(b, `"/></svg>`...), nil
}

// ProfileURL returns the absolute URL of a's Apple profile, the link of
// the settings page on the name the profile is served at
// (https://autoconfig.<domain>/mobileconfig?emailaddress=<address>).
func ProfileURL(a Address) string {
	return "https://autoconfig." + a.Domain + "/mobileconfig?emailaddress=" + url.QueryEscape(a.Local) + "%40" + url.QueryEscape(a.Domain)
}

// ProfileQR returns the HTML the settings page shows after the profile
// link (Template.AppendQR): a line telling to scan the code with the
// phone, and ProfileURL(a) as a QR code (QRCodeSVG). Nothing of a reaches
// the HTML but the QR code's modules.
//
// It costs a QR encoding (some 250 µs, BenchmarkProfileQR), so callers keep what it returns
// and bound how often they call it.
func ProfileQR(a Address) ([]byte, error) {
	svg, err := QRCodeSVG(ProfileURL(a))
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(svg)+160)
	b = append(b, "\n<p class=\"note\">On an iPhone or iPad, scan this code with the camera to download the profile there:</p>\n<p>"...)
	b = append(b, svg...)
	return append(b, "</p>"...), nil
}
