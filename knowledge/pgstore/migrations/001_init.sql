-- Knowledge base schema, version 1.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE kb_faqs (
    id          text PRIMARY KEY,
    external_id text UNIQUE,
    question    text NOT NULL,
    phrasings   text[] NOT NULL DEFAULT '{}',
    answer      text NOT NULL,
    category    text NOT NULL DEFAULT '',
    tags        text[] NOT NULL DEFAULT '{}',
    locale      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('draft', 'published')),
    intent      text NOT NULL DEFAULT '',
    threshold   double precision NOT NULL DEFAULT 0,
    version     bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  text NOT NULL DEFAULT '',
    -- Lexical index: terms of the question, phrasings and tags (weight A)
    -- and of the answer (weight D), tokenised in Go (knowledge.Tokens) so
    -- both stores rank identically; dl is the weighted document length.
    tsv         tsvector NOT NULL,
    dl          double precision NOT NULL
);
CREATE INDEX kb_faqs_tsv_idx ON kb_faqs USING gin (tsv);
CREATE INDEX kb_faqs_tags_idx ON kb_faqs USING gin (tags);

-- Audit trail: one snapshot per version, kept after deletion.
CREATE TABLE kb_revisions (
    faq_id   text NOT NULL,
    version  bigint NOT NULL,
    op       text NOT NULL,
    actor    text NOT NULL,
    at       timestamptz NOT NULL,
    snapshot jsonb NOT NULL,
    PRIMARY KEY (faq_id, version)
);

-- BM25 statistics, maintained in the same transaction as every write.
CREATE TABLE kb_terms (
    term text PRIMARY KEY,
    df   integer NOT NULL
);
CREATE TABLE kb_stats (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    docs     bigint NOT NULL,
    total_dl double precision NOT NULL
);
INSERT INTO kb_stats (id, docs, total_dl) VALUES (true, 0, 0);

-- Encoder versions and their phrasing vectors. Each version gets its own
-- partial HNSW index on (embedding::vector(dim)), created when registered.
CREATE TABLE kb_models (
    version    text PRIMARY KEY,
    dim        integer NOT NULL CHECK (dim > 0),
    active     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE kb_embeddings (
    model     text NOT NULL REFERENCES kb_models (version) ON DELETE CASCADE,
    faq_id    text NOT NULL REFERENCES kb_faqs (id) ON DELETE CASCADE,
    ord       integer NOT NULL,
    -- Denormalised filter columns so filtered HNSW scans need no join.
    locale    text NOT NULL,
    published boolean NOT NULL,
    tags      text[] NOT NULL,
    embedding vector NOT NULL,
    PRIMARY KEY (model, faq_id, ord)
);
CREATE INDEX kb_embeddings_faq_idx ON kb_embeddings (faq_id);
