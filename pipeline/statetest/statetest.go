// Package statetest is the contract suite every pipeline.StateStore must pass.
package statetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/pipeline"
)

// Run checks the behaviour every StateStore must have; adapter
// packages call it from their tests against a real backend.
func Run(t *testing.T, s pipeline.StateStore) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Load(ctx, "unknown")
	if err != nil || got.Turns != 0 || got.Slots != nil {
		t.Fatalf("unknown conversation: %+v, %v", got, err)
	}
	want := pipeline.State{
		RecentIntents:  []string{"a", "b"},
		Slots:          map[string]string{"order_id": "ORD-1", "email": "x@example.com"},
		Fallbacks:      2,
		PendingClarify: []pipeline.Choice{{Label: "Track my order", Intent: "track_order"}, {Label: "Q", FAQID: "f1"}},
		Turns:          7,
		UpdatedAt:      time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
	}
	if err := s.Save(ctx, "c1", want); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// Loaded state is a copy: changing it does not change the store.
	got.Slots["order_id"] = "changed"
	got.RecentIntents[0] = "changed"
	again, _ := s.Load(ctx, "c1")
	if again.Slots["order_id"] != "ORD-1" || again.RecentIntents[0] != "a" {
		t.Fatal("store shares memory with a loaded state")
	}
	// Overwrite.
	want.Turns = 8
	want.PendingClarify = nil
	if err := s.Save(ctx, "c1", want); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx, "c1"); got.Turns != 8 || len(got.PendingClarify) != 0 {
		t.Fatalf("overwrite: %+v", got)
	}
	// Delete forgets one conversation, twice is fine, others stay.
	if err := s.Save(ctx, "c-other", want); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Delete(ctx, "c1"); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if got, err := s.Load(ctx, "c1"); err != nil || got.Turns != 0 || got.Slots != nil {
		t.Fatalf("after delete: %+v, %v; want a zero state", got, err)
	}
	if got, _ := s.Load(ctx, "c-other"); got.Turns != 8 {
		t.Fatalf("delete took another conversation's state: %+v", got)
	}
	// Concurrent use on distinct conversations.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("p%d", i)
			for j := range 20 {
				if err := s.Save(ctx, id, pipeline.State{Turns: j}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Load(ctx, id); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
