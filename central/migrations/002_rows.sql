-- require_keys fails the statement (SQLSTATE P0002, no_data_found) when a
-- row of keys (1-based positions) is not in got: an UPDATE or DELETE of a
-- row that does not exist is a rejection. keys are the rows' primary keys
-- as text, so the message names the missing one.
CREATE FUNCTION chasqui.require_keys(what text, keys text[], got bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    missing int;
BEGIN
    SELECT i INTO missing FROM generate_subscripts(keys, 1) AS i WHERE i <> ALL (got) ORDER BY i LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% row % does not exist', what, keys[missing]
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
