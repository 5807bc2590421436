package handoff

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are an engine's Prometheus collectors. Each node observes the
// transitions it makes; Prometheus sums them across nodes.
type metrics struct {
	wait         prometheus.Histogram     // queued -> assigned
	handle       *prometheus.HistogramVec // assigned -> resolved/returned, by outcome
	offerLatency prometheus.Histogram     // queued -> offered
	transitions  *prometheus.CounterVec   // by reason
	dropped      prometheus.Counter       // events dropped (full buffer)
	queueDepth   prometheus.Gauge         // queued tickets at the last sweep
	agentsOnline prometheus.Gauge         // agents online and connected at the last sweep
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tandem_handoff_wait_seconds",
			Help:    "Time a ticket waited in the queue before an agent took it (queued to assigned).",
			Buckets: []float64{1, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}),
		handle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_handoff_handle_seconds",
			Help:    "Time an agent handled a ticket (assigned to resolved or returned to the bot).",
			Buckets: []float64{30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200},
		}, []string{"outcome"}),
		offerLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tandem_handoff_offer_latency_seconds",
			Help:    "Time from a ticket entering the queue to its offer to an agent.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300},
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_handoff_transitions_total",
			Help: "Ticket transitions made by this node, by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tandem_handoff_events_dropped_total",
			Help: "Handoff events dropped because the notifier fell behind.",
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_handoff_queue_depth",
			Help: "Queued tickets at this node's last sweep.",
		}),
		agentsOnline: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_handoff_agents_online",
			Help: "Agents online and connected at this node's last sweep.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.wait, m.handle, m.offerLatency, m.transitions, m.dropped, m.queueDepth, m.agentsOnline} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("handoff: metrics already registered (one Engine per Registerer)")
			}
			return nil, err
		}
	}
	return m, nil
}
