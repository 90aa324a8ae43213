-- Superseded by 0006, which creates streamer_failed_rows per table (or reshapes the one this file
-- created on databases that applied it). Kept, empty, so that the numbering stays as it was.
SELECT 1;
