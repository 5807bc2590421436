//go:build !linux

package main

import "time"

// pause blocks for about d (see pause_linux.go).
func pause(d time.Duration) { time.Sleep(d) }
