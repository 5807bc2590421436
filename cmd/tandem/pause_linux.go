package main

import (
	"syscall"
	"time"
)

// pause blocks the calling goroutine's thread for about d. The load
// generator paces open-loop arrivals with it: a Go timer shorter than a
// millisecond fires only about 1 ms later on an idle machine (the runtime's
// poller waits in whole milliseconds), which would add up to a millisecond
// of the generator's own lag to every measured latency; nanosleep wakes
// within the kernel's timer slack (about 50 µs).
func pause(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
