//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// readSecret prompts on w and reads one line from the terminal f with echo
// off. ok is false when f is not a terminal.
func readSecret(f *os.File, w io.Writer, prompt string) (secret string, ok bool, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", false, nil // not a terminal
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", true, fmt.Errorf("turn off echo: %w", err)
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	fmt.Fprint(w, prompt)
	line, err := bufio.NewReader(f).ReadString('\n')
	fmt.Fprintln(w)
	if err != nil && line == "" {
		return "", true, fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), true, nil
}
