-- 0001: the nodes a directory holds, one row each.
--
-- Applied by iicp-node at start (src/directory/store/postgres.rs), in one
-- transaction under an advisory lock, and recorded in schema_migrations.
-- A migration, once released, is never edited: a change is a new file.
--
-- `record` is the node's record as JSON text (the form the SQLite store
-- keeps too): text, not jsonb, so that any record the directory accepted
-- is stored as it is. `updated_at` is when this row last changed.
CREATE TABLE nodes (
    node_id    text PRIMARY KEY,
    record     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Facts about the store itself; `opened_at` is written at every start (the
-- one real write that proves the database takes writes).
CREATE TABLE store_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
