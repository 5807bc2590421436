package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type chatMetrics struct {
	accepted  prometheus.Counter
	rejected  *prometheus.CounterVec
	framesIn  prometheus.Counter
	framesOut prometheus.Counter
	errors    *prometheus.CounterVec
	slow      prometheus.Counter
	// ephemeralDropped counts typing and read frames not sent on (over a
	// sender's rate, or for a receiver whose queue is half full) and the
	// deltas of streams cut for a receiver whose queue was half full.
	ephemeralDropped prometheus.Counter
	gapFills         prometheus.Counter
	appended         *prometheus.CounterVec
	turns            *prometheus.HistogramVec
	// modeRepaired counts conversations found in queued or human mode
	// without an open ticket and sent back to the bot (HandoffStater).
	modeRepaired prometheus.Counter
	// lostTurns counts customer messages answered late because their bot
	// turn was lost, by how it was found (resend or hello).
	lostTurns *prometheus.CounterVec
	// lateAnswers counts bot answers dropped because an agent took the
	// conversation while the bot worked on them.
	lateAnswers prometheus.Counter
	// ratings counts customers' ratings of their conversations, by score.
	ratings *prometheus.CounterVec
	erased  prometheus.Counter
	expired *prometheus.CounterVec
}

func newChatMetrics() *chatMetrics {
	return &chatMetrics{
		accepted:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_ws_connections_accepted_total", Help: "WebSocket connections accepted."}),
		rejected:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_ws_rejected_total", Help: "Connections, sessions and messages rejected by limits, by limit."}, []string{"limit"}),
		framesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_ws_frames_in_total", Help: "WebSocket frames received."}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_ws_frames_out_total", Help: "WebSocket frames written."}),
		errors:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_ws_errors_total", Help: "Error frames sent and read-limit closes, by code."}, []string{"code"}),
		slow:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_ws_slow_consumers_total", Help: "Connections closed because their send queue overflowed."}),
		ephemeralDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_ws_ephemeral_dropped_total",
			Help: "Typing and read-receipt frames dropped (over the sender's rate, or for a receiver whose send queue is half full) and streamed-answer deltas left out for a receiver whose send queue was half full."}),
		gapFills: prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_ws_gap_fills_total", Help: "Message gaps a connection filled from the log."}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_messages_appended_total", Help: "Messages appended to conversation logs, by author."}, []string{"author"}),
		turns: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tandem_bot_turn_seconds", Help: "Bot turn latency by reply kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"kind"}),
		modeRepaired: prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_handoff_mode_repaired_total",
			Help: "Conversations found in queued or human mode without an open ticket (a handoff event was lost) and sent back to the bot."}),
		lostTurns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_bot_turns_recovered_total",
			Help: "Stored customer messages whose bot turn was lost (the store's reply lost, the node stopped, the turn not queued), answered late, by how they were found: resend or hello."}, []string{"found_by"}),
		lateAnswers: prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_bot_answers_dropped_total",
			Help: "Bot answers not posted because an agent took the conversation while the bot worked on them (the agent answers the message)."}),
		ratings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_conversation_ratings_total",
			Help: "Customers' ratings of their conversations (the widget asks when an agent closes one), by score (good or bad) and the agent who wrote last (agent id; empty when none in the last 50 messages)."}, []string{"score", "agent"}),
		erased:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_conversations_erased_total", Help: "Conversations erased for good (DELETE /v1/conversations/{id})."}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_conversations_expired_total", Help: "Conversations idle past the retention period, by outcome: erased, or kept (an open ticket, or a message arrived meanwhile)."}, []string{"outcome"}),
	}
}

func (m *chatMetrics) register(r prometheus.Registerer, c *Chat) error {
	conns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_ws_connections", Help: "Open WebSocket connections."},
		func() float64 { return float64(c.Connections()) })
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_bot_turns_pending", Help: "Bot turns queued or running on this node."},
		func() float64 { return float64(c.PendingTurns()) })
	for _, col := range []prometheus.Collector{m.accepted, m.rejected, m.framesIn, m.framesOut, m.errors, m.slow, m.ephemeralDropped, m.gapFills, m.appended, m.turns, m.modeRepaired, m.lostTurns, m.lateAnswers, m.ratings, m.erased, m.expired, conns, pending} {
		if err := r.Register(col); err != nil {
			return fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return nil
}
