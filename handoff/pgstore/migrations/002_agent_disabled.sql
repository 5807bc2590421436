-- Handoff schema, version 2: disabled agents cannot log in, connect or
-- receive work.
ALTER TABLE handoff_agents ADD COLUMN disabled boolean NOT NULL DEFAULT false;
