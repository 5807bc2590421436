package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/storetest"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// TestNoDoubleAssignment runs two engines (two server nodes, each with its
// own pool) on one database while workers with seeded random choices
// escalate, accept, decline, claim, transfer, resolve, return, cancel,
// disconnect and reconnect, and a shared manual clock advances so offers
// time out; then half the agents' nodes crash and the clock passes the
// grace period, so their chats are re-queued while both nodes sweep. Both engines route
// continuously. Meanwhile a checker takes consistent snapshots; at the end
// the transition log is replayed. Properties:
//
//   - every ticket's transitions form one chain (each change starts from
//     the state and holder the previous one left), so a ticket is never
//     held by two agents at once;
//   - replaying each agent's transitions in commit order, its load never
//     exceeds its capacity;
//   - in every snapshot, each agent's load equals the tickets it holds and
//     is within capacity.
func TestNoDoubleAssignment(t *testing.T) {
	const (
		seed    = 20260105
		nAgents = 14
		workers = 8
		steps   = 200
	)
	db := pgtest.New(t)
	ctx := context.Background()
	clock := handoff.NewManualClock(storetest.T0)
	var engines [2]*handoff.Engine
	for i := range engines {
		s := open(t, db.URL)
		e, err := handoff.New(s, handoff.Config{
			Node: fmt.Sprintf("node%d", i+1), Clock: clock, BcryptCost: 4,
			OfferTimeout: 30 * time.Second, SkipFor: time.Minute, HeartbeatTimeout: 45 * time.Second, DisconnectGrace: 60 * time.Second,
			SweepInterval: 3 * time.Millisecond, RouteBatch: 5, PositionInterval: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		engines[i] = e
		t.Cleanup(func() { _ = e.Close(ctx) })
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	skills := []string{"billing", "tech", "legal"}
	langs := []string{"en", "de"}
	type agentInfo struct {
		id  string
		max int
	}
	var agents []agentInfo
	maxOf := map[string]int{}
	for i := range nAgents {
		a := tandem.Agent{Email: fmt.Sprintf("agent%d@example.com", i), MaxChats: 1 + rng.IntN(3), Languages: []string{langs[rng.IntN(2)]}}
		if rng.IntN(3) == 0 {
			a.Languages = langs
		}
		for _, s := range skills {
			if rng.IntN(2) == 0 {
				a.Skills = append(a.Skills, s)
			}
		}
		a, err := engines[i%2].CreateAgent(ctx, a, "")
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, agentInfo{a.ID, a.MaxChats})
		maxOf[a.ID] = a.MaxChats
	}

	runCtx, stop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	for _, e := range engines {
		bg.Add(1)
		go func() { defer bg.Done(); _ = e.Run(runCtx) }()
	}
	// Checker: consistent snapshots while everything runs.
	var snapshots, violations atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		for runCtx.Err() == nil {
			bad, err := snapshotViolations(runCtx, db)
			if err != nil {
				if runCtx.Err() == nil {
					t.Errorf("snapshot: %v", err)
				}
				return
			}
			snapshots.Add(1)
			violations.Add(int64(bad))
		}
	}()

	// Sessions, per agent, guarded by mu.
	var mu sync.Mutex
	sessions := map[string]string{}
	var convs atomic.Int64
	var accepts, claims, transfers, closes atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w+1)))
			fail := func(op string, err error) {
				switch tandem.ErrorCode(err) {
				case "", tandem.ECONFLICT, tandem.ENOTFOUND, tandem.EFORBIDDEN, tandem.EINVALID:
					return // expected under contention
				}
				t.Errorf("worker %d: %s: %v", w, op, err)
			}
			for range steps {
				e := engines[r.IntN(2)]
				ag := agents[r.IntN(len(agents))]
				actor := handoff.Actor{AgentID: ag.id}
				switch op := r.IntN(100); {
				case op < 20: // a customer escalates
					n := convs.Add(1)
					esc := tandem.Escalation{Reason: []tandem.EscalationReason{tandem.EscalateButton, tandem.EscalateLowConfidence, tandem.EscalateSentiment}[r.IntN(3)],
						Language: langs[r.IntN(2)]}
					if r.IntN(2) == 0 {
						esc.Skills = []string{skills[r.IntN(3)]}
					}
					conv := tandem.Conversation{ID: fmt.Sprintf("c%d", n), Customer: tandem.Customer{ID: fmt.Sprintf("cust%d", r.IntN(40))}}
					if r.IntN(5) == 0 {
						conv.Customer.Tier = "vip"
					}
					_, _, err := e.Escalate(ctx, conv, esc)
					fail("escalate", err)
				case op < 30: // connect or heartbeat
					mu.Lock()
					sid, ok := sessions[ag.id]
					mu.Unlock()
					if ok {
						fail("heartbeat", e.Heartbeat(ctx, ag.id, sid))
						continue
					}
					sid, _, err := e.Connect(ctx, ag.id)
					fail("connect", err)
					if err == nil {
						mu.Lock()
						sessions[ag.id] = sid
						mu.Unlock()
					}
				case op < 32: // disconnect
					mu.Lock()
					sid, ok := sessions[ag.id]
					delete(sessions, ag.id)
					mu.Unlock()
					if ok {
						fail("disconnect", e.Disconnect(ctx, ag.id, sid))
					}
				case op < 34: // presence toggle
					p := []tandem.Presence{tandem.PresenceOnline, tandem.PresenceOnline, tandem.PresenceAway}[r.IntN(3)]
					_, err := e.SetPresence(ctx, ag.id, p)
					fail("presence", err)
				case op < 74: // act on one of the agent's tickets
					ts, err := e.AgentTickets(ctx, ag.id)
					fail("agent tickets", err)
					if len(ts) == 0 {
						continue
					}
					tk := ts[r.IntN(len(ts))]
					if tk.State == tandem.TicketOffered {
						if r.IntN(5) == 0 {
							_, err = e.Decline(ctx, actor, tk.ID)
							fail("decline", err)
						} else if _, err = e.Accept(ctx, actor, tk.ID); err == nil {
							accepts.Add(1)
						} else {
							fail("accept", err)
						}
						continue
					}
					switch k := r.IntN(10); {
					case k < 5:
						if _, err = e.Resolve(ctx, actor, tk.ID); err == nil {
							closes.Add(1)
						}
						fail("resolve", err)
					case k < 6:
						_, err = e.ReturnToBot(ctx, actor, tk.ID)
						fail("return", err)
					case k < 8:
						to := agents[r.IntN(len(agents))].id
						mu.Lock() // prefer a connected target, as a console would
						for id := range sessions {
							if id != ag.id && r.IntN(3) == 0 {
								to = id
								break
							}
						}
						mu.Unlock()
						if _, err = e.Transfer(ctx, actor, tk.ID, to); err == nil {
							transfers.Add(1)
						}
						fail("transfer", err)
					default:
						_, err = e.TransferToGroup(ctx, actor, tk.ID, []string{skills[r.IntN(3)]})
						fail("transfer group", err)
					}
				case op < 84: // claim from the queue
					q, err := e.Queue(ctx, 20)
					fail("queue", err)
					if len(q) > 0 {
						if _, err := e.Claim(ctx, actor, q[r.IntN(len(q))].Ticket.ID); err == nil {
							claims.Add(1)
						} else {
							fail("claim", err)
						}
					}
				case op < 87: // a customer leaves or goes back to the bot
					n := convs.Load()
					if n > 0 {
						_, err := e.Cancel(ctx, fmt.Sprintf("c%d", 1+r.Int64N(n)), []tandem.TicketState{tandem.TicketReturned, tandem.TicketAbandoned}[r.IntN(2)])
						fail("cancel", err)
					}
				case op < 91: // time passes
					clock.Advance(time.Duration(r.IntN(7)) * time.Second)
				default: // an explicit sweep on this node
					fail("tick", e.Tick(ctx))
				}
			}
		}()
	}
	wg.Wait()
	// The crash below must find a chat to re-queue: the workers' schedule
	// (goroutine order varies from run to run) may have left the crashing
	// agents none, and the run then exercised no disconnect. One of them
	// claims a ticket no agent's skills route (so routing cannot take it
	// first).
	crash := agents[1]
	actor := handoff.Actor{AgentID: crash.id}
	if _, err := engines[1].SetPresence(ctx, crash.id, tandem.PresenceOnline); err != nil {
		t.Fatal(err)
	}
	sid, _, err := engines[1].Connect(ctx, crash.id)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	sessions[crash.id] = sid
	mu.Unlock()
	tk, _, err := engines[1].Escalate(ctx, tandem.Conversation{ID: "conv-crash-held"}, tandem.Escalation{Reason: tandem.EscalateButton, Skills: []string{"nobody-has-it"}})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		held, err := engines[1].AgentTickets(ctx, crash.id)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(held, func(h tandem.Ticket) bool { return h.State == tandem.TicketAssigned }) {
			break
		}
		if attempt == 20 {
			t.Fatalf("the crashing agent holds no chat: %+v", held)
		}
		for _, h := range held { // routing offered it one meanwhile
			_, _ = engines[1].Accept(ctx, actor, h.ID)
		}
		_, _ = engines[1].Claim(ctx, actor, tk.ID)
	}
	// Final phase: the nodes holding half of the agents' consoles crash (no
	// more heartbeats); two minutes pass in 10 s steps while the other half
	// keep heartbeating and both nodes sweep concurrently, so offers expire
	// and the crashed agents' chats are re-queued and routed again.
	for range 12 {
		clock.Advance(10 * time.Second)
		for i, ag := range agents {
			if i%2 == 1 {
				continue
			}
			mu.Lock()
			sid, ok := sessions[ag.id]
			mu.Unlock()
			if ok && engines[i%2].Heartbeat(ctx, ag.id, sid) == nil {
				continue
			}
			sid, _, err := engines[i%2].Connect(ctx, ag.id)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			sessions[ag.id] = sid
			mu.Unlock()
		}
		var tw sync.WaitGroup
		for k := range 4 {
			tw.Add(1)
			go func() {
				defer tw.Done()
				if err := engines[k%2].Tick(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		tw.Wait()
	}
	// Let the nodes finish routing, then stop them.
	for _, e := range engines {
		if err := e.Tick(ctx); err != nil {
			t.Error(err)
		}
	}
	stop()
	bg.Wait()

	s := open(t, db.URL)
	storetest.CheckInvariants(t, s)
	if v := violations.Load(); v != 0 {
		t.Errorf("%d capacity or load violations in %d snapshots", v, snapshots.Load())
	}
	trs, err := s.Transitions(ctx, handoff.TransitionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	replay(t, trs, maxOf)
	byNode := map[string]int{}
	byReason := map[string]int{}
	routed := 0
	for _, tr := range trs {
		byReason[tr.Reason]++
		if tr.Reason == handoff.ReasonRoute {
			routed++
			byNode[tr.Node]++
		}
	}
	t.Logf("transitions by reason: %v", byReason)
	t.Logf("seed %d: %d conversations, %d transitions, %d routed offers %v, %d accepts, %d claims, %d transfers, %d resolved, %d snapshots",
		seed, convs.Load(), len(trs), routed, byNode, accepts.Load(), claims.Load(), transfers.Load(), closes.Load(), snapshots.Load())
	if accepts.Load() < 30 || byNode["node1"] == 0 || byNode["node2"] == 0 || snapshots.Load() < 2 ||
		byReason[handoff.ReasonDisconnect] == 0 || byReason[handoff.ReasonOfferTimeout] == 0 || byReason[handoff.ReasonDecline] == 0 {
		t.Errorf("the run exercised too little: %d accepts, offers by node %v, transitions %v, %d snapshots", accepts.Load(), byNode, byReason, snapshots.Load())
	}
}

// snapshotViolations checks, in one REPEATABLE READ snapshot, that every
// agent's load equals the tickets it holds and is within capacity.
func snapshotViolations(ctx context.Context, db *pgtest.DB) (int, error) {
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	var bad int
	err = tx.QueryRow(ctx, `SELECT count(*) FROM handoff_agents a
		LEFT JOIN (SELECT agent_id, count(*) AS n FROM handoff_tickets WHERE state IN ('offered', 'assigned') GROUP BY agent_id) h ON h.agent_id = a.id
		WHERE a.load <> coalesce(h.n, 0) OR a.load > a.max_chats`).Scan(&bad)
	return bad, err
}

// replay checks the transition log: one chain per ticket, and per agent a
// load that never exceeds capacity, in commit (seq) order.
func replay(t *testing.T, trs []handoff.Transition, maxOf map[string]int) {
	t.Helper()
	type tstate struct {
		state  tandem.TicketState
		holder string
	}
	tickets := map[string]tstate{}
	load := map[string]int{}
	peak := map[string]int{}
	held := func(s tandem.TicketState, a string) string {
		if handoff.Holds(s) {
			return a
		}
		return ""
	}
	for _, tr := range trs {
		prev, ok := tickets[tr.TicketID]
		if !ok {
			if tr.From != "" || tr.To != tandem.TicketQueued {
				t.Fatalf("seq %d: ticket %s starts with %s>%s", tr.Seq, tr.TicketID, tr.From, tr.To)
			}
			tickets[tr.TicketID] = tstate{state: tandem.TicketQueued}
			continue
		}
		if tr.From != prev.state {
			t.Fatalf("seq %d: ticket %s goes %s>%s but was %s (a lost or doubled transition)", tr.Seq, tr.TicketID, tr.From, tr.To, prev.state)
		}
		if handoff.Closed(prev.state) {
			t.Fatalf("seq %d: ticket %s changes after closing", tr.Seq, tr.TicketID)
		}
		oldHolder, newHolder := held(prev.state, prev.holder), held(tr.To, tr.AgentID)
		if handoff.Holds(prev.state) && tr.PrevAgent != prev.holder {
			t.Fatalf("seq %d: ticket %s taken from %s but held by %s", tr.Seq, tr.TicketID, tr.PrevAgent, prev.holder)
		}
		if handoff.Holds(tr.To) && tr.AgentID == "" {
			t.Fatalf("seq %d: ticket %s %s without an agent", tr.Seq, tr.TicketID, tr.To)
		}
		if tr.To == tandem.TicketAssigned && !slices.Contains([]tandem.TicketState{tandem.TicketOffered, tandem.TicketQueued}, prev.state) {
			t.Fatalf("seq %d: ticket %s assigned from %s", tr.Seq, tr.TicketID, prev.state)
		}
		if tr.To == tandem.TicketAssigned && prev.state == tandem.TicketOffered && tr.AgentID != prev.holder {
			t.Fatalf("seq %d: ticket %s offered to %s but assigned to %s", tr.Seq, tr.TicketID, prev.holder, tr.AgentID)
		}
		if oldHolder != newHolder {
			if oldHolder != "" {
				load[oldHolder]--
			}
			if newHolder != "" {
				load[newHolder]++
				peak[newHolder] = max(peak[newHolder], load[newHolder])
				if load[newHolder] > maxOf[newHolder] {
					t.Fatalf("seq %d: agent %s holds %d tickets, capacity %d", tr.Seq, newHolder, load[newHolder], maxOf[newHolder])
				}
			}
		}
		tickets[tr.TicketID] = tstate{state: tr.To, holder: tr.AgentID}
	}
	full := 0
	for a, p := range peak {
		if p == maxOf[a] {
			full++
		}
	}
	if full == 0 {
		t.Errorf("no agent ever reached capacity: the test did not stress capacity")
	}
}
