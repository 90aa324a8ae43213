-- NOTIFY is a wake-up hint, never the data: the payload is one word and the producer always
-- reads the pending rows from the table.
--
-- Inserts: a STATEMENT-level trigger, so a 10,000-row INSERT wakes the producer once.
CREATE OR REPLACE FUNCTION streamer_notify_user_login() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('streamer_user_login', TG_OP);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS streamer_user_login_inserted ON user_login;
CREATE TRIGGER streamer_user_login_inserted
    AFTER INSERT ON user_login
    FOR EACH STATEMENT EXECUTE FUNCTION streamer_notify_user_login();

-- Re-sends: an operator sets sent_to_kafka back to FALSE. A row-level trigger with a WHEN clause
-- costs nothing for other updates (the WHEN is checked without calling the function; the
-- producer's own "mark sent" UPDATE never fires it), and PostgreSQL folds identical
-- notifications of one transaction into one, so resetting 10,000 rows also wakes us once.
DROP TRIGGER IF EXISTS streamer_user_login_reset ON user_login;
CREATE TRIGGER streamer_user_login_reset
    AFTER UPDATE OF sent_to_kafka ON user_login
    FOR EACH ROW
    WHEN (OLD.sent_to_kafka IS TRUE AND NEW.sent_to_kafka IS NOT TRUE)
    EXECUTE FUNCTION streamer_notify_user_login();
