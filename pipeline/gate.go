package pipeline

import (
	"context"
	"sync/atomic"

	"github.com/tandem-chat/tandem"
)

// gate admits at most a fixed number of turns to the model stages at once,
// in arrival order: a turn that finds every slot taken waits in a FIFO
// queue (a Go channel's blocked senders are served first come, first
// served), and a turn that finds the queue full fails with
// tandem.EOVERLOADED instead of joining it.
//
// Without a gate, every waiting turn shares the cores with every other
// (processor sharing): under load all of them slow down together and
// finish late together. With it, the cores work on a few turns at a time,
// oldest first, which keeps the tail of the latency close to the median
// at the same throughput. The micro-batchers still see up to the gate's
// width of turns at once.
type gate struct {
	slots      chan struct{}
	waiting    atomic.Int64
	maxWaiting int64
}

func newGate(width, maxWaiting int) *gate {
	return &gate{slots: make(chan struct{}, width), maxWaiting: int64(maxWaiting)}
}

// enter takes a slot, waiting for one in arrival order; leave must follow
// a nil return.
func (g *gate) enter(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.waiting.Add(1) > g.maxWaiting {
		g.waiting.Add(-1)
		return tandem.Errorf(tandem.EOVERLOADED, "too many turns waiting for the models; retry shortly")
	}
	defer g.waiting.Add(-1)
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return turnEnded(ctx)
	}
}

// leave frees the slot taken by enter.
func (g *gate) leave() { <-g.slots }
