package tandem

import "testing"

func TestCustomerVIP(t *testing.T) {
	for tier, want := range map[string]bool{"vip": true, "VIP": true, "Vip": true, "": false, "gold": false, "vip2": false} {
		if got := (Customer{Tier: tier}).VIP(); got != want {
			t.Errorf("tier %q: VIP() = %v, want %v", tier, got, want)
		}
	}
}
