-- Superseded. Until the table specification (issue 11), this migration created user_login by hand;
-- `streamer migrate` now creates each configured table from its spec (src/sink/ddl.ts), and moves a
-- table this file made to the new shape, keeping every row. Kept, empty, so that the numbering of
-- applied migrations stays as it was.
SELECT 1;
