-- 2: events carry their family and the collector's stable id; a repeat is dropped by the
-- unique index. Only events with an id are indexed, so older reports cost nothing more.
ALTER TABLE events ADD COLUMN family TEXT;
ALTER TABLE events ADD COLUMN event_id TEXT;
CREATE UNIQUE INDEX events_by_id ON events (family, array, event_id) WHERE event_id IS NOT NULL;
