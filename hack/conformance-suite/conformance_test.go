// Package conformance runs the official Gateway API conformance suite against tenant-gateway.
//
// It holds nothing but the suite's own entry point: the version is the one go.mod requires
// (GATEWAY_API_VERSION in hack/versions; `hack/gateway-api check` fails when they differ), and
// every option is one of the suite's flags, passed by hack/conformance after -args.
package conformance

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

// TestConformance is the suite's TestConformance (sigs.k8s.io/gateway-api/conformance's
// conformance_test.go): options from the suite's command-line flags, kubeconfig from
// $KUBECONFIG, manifests embedded in the module.
func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
