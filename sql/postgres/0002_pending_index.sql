-- Superseded. Until the table specification (issue 11), this migration installed the capture of
-- user_login by hand; `streamer migrate` now installs each configured table's capture from its
-- spec (src/capture/plans.ts), and replaces what this file made on databases that applied it.
-- Kept, empty, so that the numbering of applied migrations stays as it was.
SELECT 1;
