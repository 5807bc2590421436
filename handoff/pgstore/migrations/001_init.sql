-- Handoff schema, version 1: agents, console sessions, tickets, routing
-- skips and the transition log.

CREATE TABLE handoff_agents (
    id            text PRIMARY KEY,
    email         text NOT NULL,
    display_name  text NOT NULL,
    password_hash bytea,
    role          text NOT NULL CHECK (role IN ('agent', 'admin')),
    skills        text[] NOT NULL DEFAULT '{}',
    languages     text[] NOT NULL DEFAULT '{}',
    max_chats     integer NOT NULL CHECK (max_chats >= 0),
    presence      text NOT NULL DEFAULT 'online' CHECK (presence IN ('online', 'away', 'offline')),
    -- Tickets offered or assigned to the agent. Raised only by conditional
    -- updates (load < max_chats) under the row lock, so concurrent nodes
    -- never push an agent above capacity.
    load          integer NOT NULL DEFAULT 0 CHECK (load >= 0),
    idle_since    timestamptz NOT NULL,
    last_seen_at  timestamptz,
    created_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX handoff_agents_email_idx ON handoff_agents (lower(email));

CREATE TABLE handoff_sessions (
    id        text PRIMARY KEY,
    agent_id  text NOT NULL REFERENCES handoff_agents (id) ON DELETE CASCADE,
    node      text NOT NULL DEFAULT '',
    last_seen timestamptz NOT NULL
);
CREATE INDEX handoff_sessions_agent_idx ON handoff_sessions (agent_id, last_seen);

CREATE TABLE handoff_tickets (
    id               text PRIMARY KEY,
    conversation_id  text NOT NULL,
    customer_id      text NOT NULL,
    reason           text NOT NULL,
    detail           text NOT NULL DEFAULT '',
    priority         integer NOT NULL,
    skills           text[] NOT NULL DEFAULT '{}',
    language         text NOT NULL DEFAULT '',
    tier             text NOT NULL DEFAULT '',
    summary          jsonb NOT NULL,
    state            text NOT NULL CHECK (state IN ('queued', 'offered', 'assigned', 'resolved', 'returned', 'abandoned')),
    agent_id         text REFERENCES handoff_agents (id),
    last_agent_id    text NOT NULL DEFAULT '',
    contact_address  text NOT NULL DEFAULT '',
    version          bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    queued_at        timestamptz,
    offered_at       timestamptz,
    offer_expires_at timestamptz,
    assigned_at      timestamptz,
    closed_at        timestamptz,
    -- A ticket held by an agent names that agent; a queued one names nobody.
    CHECK (state NOT IN ('offered', 'assigned') OR agent_id IS NOT NULL),
    CHECK (state <> 'queued' OR agent_id IS NULL),
    CHECK (state <> 'offered' OR offer_expires_at IS NOT NULL)
);
-- At most one open ticket per conversation.
CREATE UNIQUE INDEX handoff_tickets_open_idx ON handoff_tickets (conversation_id) WHERE state IN ('queued', 'offered', 'assigned');
-- The queue, in queue order.
CREATE INDEX handoff_tickets_queue_idx ON handoff_tickets (priority DESC, created_at, id) WHERE state = 'queued';
CREATE INDEX handoff_tickets_held_idx ON handoff_tickets (agent_id) WHERE state IN ('offered', 'assigned');
CREATE INDEX handoff_tickets_offer_idx ON handoff_tickets (offer_expires_at) WHERE state = 'offered';
CREATE INDEX handoff_tickets_customer_idx ON handoff_tickets (customer_id, assigned_at DESC);
CREATE INDEX handoff_tickets_closed_idx ON handoff_tickets (closed_at DESC) WHERE state IN ('resolved', 'returned') AND assigned_at IS NOT NULL;
CREATE INDEX handoff_tickets_created_idx ON handoff_tickets (created_at, id);

CREATE TABLE handoff_skips (
    ticket_id text NOT NULL REFERENCES handoff_tickets (id) ON DELETE CASCADE,
    agent_id  text NOT NULL,
    until     timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, agent_id)
);

CREATE TABLE handoff_transitions (
    seq           bigserial PRIMARY KEY,
    ticket_id     text NOT NULL REFERENCES handoff_tickets (id) ON DELETE CASCADE,
    from_state    text NOT NULL DEFAULT '',
    to_state      text NOT NULL,
    agent_id      text NOT NULL DEFAULT '',
    prev_agent_id text NOT NULL DEFAULT '',
    reason        text NOT NULL,
    node          text NOT NULL DEFAULT '',
    at            timestamptz NOT NULL
);
CREATE INDEX handoff_transitions_ticket_idx ON handoff_transitions (ticket_id, seq);
