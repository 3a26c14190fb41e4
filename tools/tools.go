//go:build tools

// Package tools records the tool dependencies of this module so that
// `go mod tidy` keeps them (the usual tools.go pattern).
package tools

import (
	_ "github.com/helm-unittest/helm-unittest/cmd/helm-unittest"
)
