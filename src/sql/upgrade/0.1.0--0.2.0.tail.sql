
-- Privileges of the new objects, as privileges.sql gives them on install.
REVOKE ALL ON outbox._subscriptions, outbox.inbox_offsets, outbox.inbox_dead_letters,
              outbox.subscriptions FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.subscribe(text, text[], regprocedure, jsonb),
                       outbox.unsubscribe(text, boolean),
                       outbox.retry_inbox_dead(text, uuid),
                       outbox._inbox_workers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION outbox.inbox_message_id(text, integer, bigint) TO PUBLIC;
