package gateway_test

import (
	"testing"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/convlogtest"
)

func TestMemLogContract(t *testing.T) {
	convlogtest.Run(t, func(t *testing.T) gateway.ConvLog { return gateway.NewMemLog() })
}
