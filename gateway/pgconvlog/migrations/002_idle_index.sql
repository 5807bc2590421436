-- Retention (gateway.Chat.ExpireIdle) pages conversations by their last
-- update, oldest first.
CREATE INDEX chat_conversations_idle ON chat_conversations (updated_at, id);
