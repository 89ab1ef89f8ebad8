-- When the outcome record reached the outcomes topic. NULL means not yet: a redelivered event
-- finds its action's final row unpublished and publishes it instead of recording a duplicate,
-- so a crash between the store update and the Kafka delivery loses nothing.
ALTER TABLE outcomes ADD COLUMN published_at TEXT;

-- `reflex history --status` and the crash recovery look rows up by status.
CREATE INDEX outcomes_status ON outcomes (status);
