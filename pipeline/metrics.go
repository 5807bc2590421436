package pipeline

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	stage       *prometheus.HistogramVec
	stageErrors *prometheus.CounterVec
	turns       *prometheus.CounterVec
	escalations *prometheus.CounterVec
	cache       *prometheus.CounterVec
	batchSize   *prometheus.HistogramVec
	llm         *prometheus.CounterVec

	// Children resolved once (label lookups hash and lock on every call).
	obsTurn, obsCache, obsIntent, obsEntities, obsRetrieval, obsRules prometheus.Observer
	obsAdmission                                                      prometheus.Observer
	batchIntent, batchEntity                                          prometheus.Observer
	cacheHit, cacheMiss                                               prometheus.Counter
}

func (m *metrics) register(r prometheus.Registerer) error {
	m.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tandem_pipeline_stage_seconds", Help: "Time spent per pipeline stage (turn = whole turn).",
		Buckets: prometheus.ExponentialBuckets(5e-6, 2.5, 14),
	}, []string{"stage"})
	m.stageErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_pipeline_stage_errors_total", Help: "Stage failures by stage."}, []string{"stage"})
	m.turns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_pipeline_turns_total", Help: "Turns by reply kind."}, []string{"kind"})
	m.escalations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_pipeline_escalations_total", Help: "Escalations by reason."}, []string{"reason"})
	m.cache = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_pipeline_answer_cache_total", Help: "Hot answer cache lookups by result."}, []string{"result"})
	m.batchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tandem_pipeline_batch_size", Help: "Texts per model call.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	}, []string{"model"})
	m.llm = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_pipeline_llm_total", Help: "LLM answer attempts by outcome."}, []string{"outcome"})
	for _, c := range []prometheus.Collector{m.stage, m.stageErrors, m.turns, m.escalations, m.cache, m.batchSize, m.llm} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	m.obsTurn, m.obsCache = m.stage.WithLabelValues("turn"), m.stage.WithLabelValues("cache")
	m.obsIntent, m.obsEntities = m.stage.WithLabelValues("intent"), m.stage.WithLabelValues("entities")
	m.obsRetrieval, m.obsRules = m.stage.WithLabelValues("retrieval"), m.stage.WithLabelValues("rules")
	m.obsAdmission = m.stage.WithLabelValues("admission")
	m.batchIntent, m.batchEntity = m.batchSize.WithLabelValues("intent"), m.batchSize.WithLabelValues("entity")
	m.cacheHit, m.cacheMiss = m.cache.WithLabelValues("hit"), m.cache.WithLabelValues("miss")
	return nil
}

// registerGate exports the admission gate's occupancy.
func registerGate(r prometheus.Registerer, g *gate) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_pipeline_admission_active", Help: "Turns running their model stages now (at most MaxActiveTurns)."},
			func() float64 { return float64(len(g.slots)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_pipeline_admission_waiting", Help: "Turns waiting, in arrival order, to run their model stages."},
			func() float64 { return float64(g.waiting.Load()) }),
	} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
