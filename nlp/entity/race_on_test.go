//go:build race

package entity

// raceEnabled: the race detector slows training about tenfold, so the
// tests that train on SNIPS use smaller slices under -race.
const raceEnabled = true
