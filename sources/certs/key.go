package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
)

// MatchingKey returns the private key in the PEM data (PKCS#8, PKCS#1 or
// SEC 1; other blocks such as certificates are skipped) whose public key is
// the certificate's. Only RSA and ECDSA keys are returned: they are what
// can sign Apple profiles. name (the host path) is used in errors.
func MatchingKey(name string, data []byte, leaf *x509.Certificate) (crypto.Signer, error) {
	var problems []string
	keys := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
				problems = append(problems, "it is encrypted")
				keys++
				continue
			}
			if b.Type == "RSA PRIVATE KEY" {
				k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
			} else {
				k, err = x509.ParseECPrivateKey(b.Bytes)
			}
		case "ENCRYPTED PRIVATE KEY":
			problems = append(problems, "it is encrypted")
			keys++
			continue
		default:
			continue
		}
		keys++
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", b.Type, err))
			continue
		}
		var signer crypto.Signer
		switch k := k.(type) {
		case *rsa.PrivateKey:
			signer = k
		case *ecdsa.PrivateKey:
			signer = k
		default:
			problems = append(problems, fmt.Sprintf("a %T cannot sign profiles (RSA or ECDSA needed)", k))
			continue
		}
		pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(leaf.PublicKey) {
			problems = append(problems, "it does not match the certificate")
			continue
		}
		return signer, nil
	}
	if keys == 0 {
		return nil, fmt.Errorf("%s: no PEM private key", name)
	}
	return nil, fmt.Errorf("%s: no usable private key: %s", name, strings.Join(slices.Compact(problems), ", "))
}
