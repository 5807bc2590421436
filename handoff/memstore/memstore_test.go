package memstore_test

import (
	"testing"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
	"github.com/tandem-chat/tandem/handoff/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) handoff.Store { return memstore.New() })
}
