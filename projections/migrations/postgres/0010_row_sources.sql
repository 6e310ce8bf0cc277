-- Row sources over a JSON array parameter, for the projections' multi-row statements. Postgres
-- plans json_array_elements as 100 rows, so joining it with a large read-model table (an UPDATE …
-- FROM, a lookup of stored rows) became a hash join over the whole table: measured 1.5 to 2.3 ms
-- per batch at 14k interaction rows, growing with the table (goodbooks has 981k). A plpgsql
-- function is never inlined, so it can declare the few rows a live batch holds, and the planner
-- then looks rows up through the primary key.
CREATE FUNCTION rm_rows(json) RETURNS SETOF json LANGUAGE plpgsql IMMUTABLE ROWS 10 AS $$
BEGIN
    RETURN QUERY SELECT json_array_elements($1);
END
$$;

CREATE FUNCTION rm_texts(json) RETURNS SETOF text LANGUAGE plpgsql IMMUTABLE ROWS 10 AS $$
BEGIN
    RETURN QUERY SELECT json_array_elements_text($1);
END
$$;
