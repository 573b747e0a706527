-- 0002: replicas sharing one database (issue 19). The database is the
-- source of truth; each directory keeps a read cache of `nodes` refreshed by
-- notifications on the channel `iicp_directory_nodes` and a poll of the
-- changes since the last one it saw (src/directory/store/postgres/).
--
-- `change_seq` orders every change of a row: a trigger sets it from one
-- sequence on every insert and update. It is also the row's version: a
-- replica updates a node only where `change_seq` is still the value it read
-- (compare-and-set), so two replicas never overwrite each other.
-- `last_seen_ms` copies the record's field, so that expiry is one DELETE.
-- A deleted node leaves a tombstone (its id and the change's number), so
-- that the poll sees deletions too; tombstones older than an hour are
-- pruned. Every change notifies its node id (ids are at most 36
-- characters, far below the payload limit).
CREATE SEQUENCE node_change_seq;

ALTER TABLE nodes
    ADD COLUMN change_seq   bigint NOT NULL DEFAULT nextval('node_change_seq'),
    ADD COLUMN last_seen_ms bigint NOT NULL DEFAULT 0;

UPDATE nodes SET last_seen_ms = COALESCE((record::json ->> 'last_seen_ms')::bigint, 0);

CREATE INDEX nodes_change_seq ON nodes (change_seq);
CREATE INDEX nodes_last_seen_ms ON nodes (last_seen_ms);

CREATE TABLE node_tombstones (
    node_id    text PRIMARY KEY,
    change_seq bigint NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX node_tombstones_change_seq ON node_tombstones (change_seq);

CREATE FUNCTION nodes_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO node_tombstones (node_id, change_seq, deleted_at)
        VALUES (OLD.node_id, nextval('node_change_seq'), now())
        ON CONFLICT (node_id) DO UPDATE
            SET change_seq = excluded.change_seq, deleted_at = excluded.deleted_at;
        PERFORM pg_notify('iicp_directory_nodes', OLD.node_id);
        RETURN OLD;
    END IF;
    NEW.change_seq := nextval('node_change_seq');
    NEW.updated_at := now();
    PERFORM pg_notify('iicp_directory_nodes', NEW.node_id);
    RETURN NEW;
END
$$;

CREATE TRIGGER nodes_changed
    BEFORE INSERT OR UPDATE OR DELETE ON nodes
    FOR EACH ROW EXECUTE FUNCTION nodes_changed();
