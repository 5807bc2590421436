package pipeline_test

import (
	"context"
	"testing"

	"github.com/tandem-chat/tandem/pipeline"
	"github.com/tandem-chat/tandem/pipeline/statetest"
)

func TestMemoryStateStoreContract(t *testing.T) {
	statetest.Run(t, pipeline.NewMemoryStateStore(3, 0))
}

func TestMemoryStateStoreEvicts(t *testing.T) {
	m := pipeline.NewMemoryStateStore(2, 0)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		_ = m.Save(ctx, id, pipeline.State{Turns: 1})
	}
	if m.Len() != 2 {
		t.Fatalf("len = %d", m.Len())
	}
	if s, _ := m.Load(ctx, "a"); s.Turns != 0 {
		t.Fatal("oldest conversation not evicted")
	}
}
