-- Chasqui's records and the bookkeeping that makes every apply idempotent.
-- Everything lives in schema chasqui, never in public.
CREATE SCHEMA IF NOT EXISTS chasqui;

CREATE TABLE chasqui.observations (
    id          uuid        PRIMARY KEY,
    instrument  text        NOT NULL,
    source      text        NOT NULL DEFAULT '',
    obs_unit    text        NOT NULL DEFAULT '',
    status      text        NOT NULL
        CONSTRAINT observations_status_known CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED', 'ABORTED')),
    start_time  timestamptz NOT NULL,
    end_time    timestamptz,
    attributes  jsonb       NOT NULL DEFAULT '{}',
    -- Transaction that created the row, and the edge it came from.
    tx_id       uuid        NOT NULL,
    edge_id     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT observations_end_after_start CHECK (end_time >= start_time)
);

CREATE TABLE chasqui.instrument_configs (
    id             uuid        PRIMARY KEY,
    instrument     text        NOT NULL,
    observation_id uuid        REFERENCES chasqui.observations (id),
    recorded_at    timestamptz NOT NULL,
    config         jsonb       NOT NULL DEFAULT '{}',
    tx_id          uuid        NOT NULL,
    edge_id        text        NOT NULL,
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instrument_configs_observation_id ON chasqui.instrument_configs (observation_id);

CREATE TABLE chasqui.raw_data_files (
    id             uuid        PRIMARY KEY,
    observation_id uuid        NOT NULL REFERENCES chasqui.observations (id),
    path           text        NOT NULL,
    size_bytes     bigint      NOT NULL CONSTRAINT raw_data_files_size_nonnegative CHECK (size_bytes >= 0),
    checksum       text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    tx_id          uuid        NOT NULL,
    edge_id        text        NOT NULL,
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX raw_data_files_observation_id ON chasqui.raw_data_files (observation_id);

-- One row per edge: the last sequence number applied (or rejected) for good,
-- and the epoch (data directory) of the edge store that sent it.
CREATE TABLE chasqui.edge_cursors (
    edge_id    text        PRIMARY KEY,
    epoch      text        NOT NULL,
    last_seq   bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The outcome of every sequence number central has seen, pruned after a
-- retention. outcome 'duplicate': the seq carried a transaction id already
-- applied under another seq (or edge); it was answered as applied, not
-- applied again.
CREATE TABLE chasqui.applied_transactions (
    edge_id     text        NOT NULL,
    seq         bigint      NOT NULL,
    tx_id       uuid        NOT NULL,
    epoch       text        NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('applied', 'rejected', 'duplicate')),
    reason      text        NOT NULL DEFAULT '',
    sqlstate    text        NOT NULL DEFAULT '',
    applied_at  timestamptz NOT NULL DEFAULT now(),
    -- Commit order: rows are inserted in sequence order under the edge's
    -- cursor lock, so for one edge it grows with seq.
    apply_order bigint      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (edge_id, seq)
);
-- Central dedupes by id only what it applied: a rejected id may be applied
-- when retried under a new seq.
CREATE UNIQUE INDEX applied_transactions_tx_id_applied ON chasqui.applied_transactions (tx_id)
    WHERE outcome = 'applied';

-- require_rows fails the statement (SQLSTATE P0002, no_data_found) when an
-- id of want is not in got: an UPDATE that touches no row is a rejection.
CREATE FUNCTION chasqui.require_rows(what text, want uuid[], got uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    SELECT w INTO missing FROM (SELECT unnest(want) EXCEPT SELECT unnest(got)) AS m(w) LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% % does not exist', what, missing
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
