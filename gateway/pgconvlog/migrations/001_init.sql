-- Conversation log of the gateway (gateway/pgconvlog).
CREATE TABLE chat_conversations (
    id          text PRIMARY KEY,
    site_key    text NOT NULL,
    customer_id text NOT NULL,
    customer    jsonb NOT NULL,
    mode        text NOT NULL,
    agent_id    text NOT NULL DEFAULT '',
    locale      text NOT NULL DEFAULT '',
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX chat_conversations_customer ON chat_conversations (site_key, customer_id, updated_at DESC);

CREATE TABLE chat_messages (
    conversation_id text NOT NULL REFERENCES chat_conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    client_id       text,
    author          text NOT NULL,
    author_id       text NOT NULL DEFAULT '',
    author_name     text NOT NULL DEFAULT '',
    text            text NOT NULL,
    kind            text NOT NULL DEFAULT 'text',
    data            jsonb,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    CONSTRAINT chat_messages_client_id UNIQUE (conversation_id, client_id)
);
