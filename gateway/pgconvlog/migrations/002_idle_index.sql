-- Retention (gateway.Chat.ExpireIdle) pages conversations by their last
-- update, oldest first. A plain CREATE INDEX blocks writes to the table
-- while it builds; on a large table, create it first with
-- CREATE INDEX CONCURRENTLY (docs/operations.md, "Retention") and this
-- step finds it there.
CREATE INDEX IF NOT EXISTS chat_conversations_idle ON chat_conversations (updated_at, id);
