package main

// The image holds the manager binary and nothing else, so no system CA bundle: these roots
// (Mozilla's, via golang.org/x/crypto) are what Go uses when the system has none, for Mautic
// servers with a publicly trusted certificate. A system bundle, where there is one, still wins,
// and spec.tls.caSecretRef still adds to whichever roots are used.
import _ "golang.org/x/crypto/x509roots/fallback"
