//go:build !linux

package main

import (
	"io"
	"os"
)

// readSecret reports that prompting without echo is not supported here:
// use --password-stdin.
func readSecret(*os.File, io.Writer, string) (string, bool, error) { return "", false, nil }
