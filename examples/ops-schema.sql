-- A small operations database of a site's own, as an observatory keeps
-- one beside Chasqui: executed observation units and the raw data packages
-- they produce. `make run` applies this file to its PostgreSQL before
-- central starts and lets central write `ops.*`; the simulator
-- (chasqui-sim) writes rows of both tables through the edge, and so can
-- anyone with grpcurl (examples/submit-row.json).
--
-- It is the user's schema, not Chasqui's: Chasqui never migrates it.
-- Applying it again changes nothing. Keys are chosen by the writer
-- (UUIDv7) before the first attempt, so a retried insert is recognised;
-- a key only a sequence could fill would be refused by central.
--
-- Outside `make run`, central's role needs only these rights on it:
--   GRANT USAGE ON SCHEMA ops TO chasqui_central;
--   GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ops TO chasqui_central;
CREATE SCHEMA IF NOT EXISTS ops;

DO $$
BEGIN
    CREATE TYPE ops.unit_status AS ENUM ('PLANNED', 'RUNNING', 'COMPLETED', 'FAILED', 'ABORTED');
EXCEPTION WHEN duplicate_object THEN
    NULL; -- applied before
END
$$;

-- One executed observation unit (a scheduling block run on the sky).
CREATE TABLE IF NOT EXISTS ops.observation_unit (
    id          uuid            PRIMARY KEY,
    name        text            NOT NULL,
    instrument  text            NOT NULL,
    status      ops.unit_status NOT NULL DEFAULT 'PLANNED',
    started_at  timestamptz,
    ended_at    timestamptz,
    -- Precipitable water vapour at the start, exact as the weather station wrote it.
    pwv_mm      numeric(6, 3),
    tags        text[]          NOT NULL DEFAULT '{}',
    parameters  jsonb           NOT NULL DEFAULT '{}',
    CONSTRAINT observation_unit_ends_after_start CHECK (ended_at >= started_at)
);

-- One package of raw data an observation unit produced, to be archived.
CREATE TABLE IF NOT EXISTS ops.raw_data_package (
    id          uuid        PRIMARY KEY,
    unit_id     uuid        NOT NULL REFERENCES ops.observation_unit (id),
    path        text        NOT NULL,
    -- JSON clients may send a bigint as a string: past 2^53 a number loses digits.
    size_bytes  bigint      NOT NULL CONSTRAINT raw_data_package_size_nonnegative CHECK (size_bytes >= 0),
    checksum    text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    metadata    jsonb
);
CREATE INDEX IF NOT EXISTS raw_data_package_unit_id ON ops.raw_data_package (unit_id);
