package memstore_test

import (
	"testing"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/memstore"
	"github.com/tandem-chat/tandem/knowledge/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) knowledge.Store { return memstore.New() })
}
