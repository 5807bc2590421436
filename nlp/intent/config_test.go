package intent

import (
	"math"
	"strings"
	"testing"
)

// TestConfigRejectsNonFinite: NaN passes every "x < lo || x >= hi" range
// check, and a NaN valid fraction crashed the trainer (a slice bound of
// MinInt64); every float setting must be a finite number.
func TestConfigRejectsNonFinite(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"ValidFraction": func(c *Config) { c.ValidFraction = math.NaN() },
		"LR":            func(c *Config) { c.LR = math.Inf(1) },
		"BranchWeights": func(c *Config) { c.BranchWeights[2] = math.NaN() },
		"OOSReject":     func(c *Config) { c.OOSReject = math.NaN() },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}
