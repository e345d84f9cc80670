-- Ambient context: root and causation ids stamped on the events emitted
-- after outbox.set_context(), until the end of the transaction.
\pset null '(null)'

-- Without a context an event is its own root.
SELECT outbox.current_root() AS no_context;
SELECT outbox.emit('Ctx', 'c0', 'E', '{}') AS last_emit \gset
SELECT root_id = event_id AS own_root, causation_id FROM outbox.events WHERE event_id = :'last_emit';

BEGIN;
SELECT outbox.set_context('01890000-0000-7000-8000-00000000000a', '01890000-0000-7000-8000-00000000000b');
SELECT outbox.current_root();
SELECT outbox.emit('Ctx', 'c1', 'E', '{}') AS e1 \gset
SELECT root_id, causation_id FROM outbox.events WHERE event_id = :'e1';
COMMIT;

-- Gone with the transaction.
SELECT outbox.current_root() AS after_commit;
SELECT outbox.emit('Ctx', 'c2', 'E', '{}') AS last_emit \gset
SELECT root_id = event_id AS own_root FROM outbox.events WHERE event_id = :'last_emit';

-- Gone with a rollback too.
BEGIN;
SELECT outbox.set_context('01890000-0000-7000-8000-00000000000a');
ROLLBACK;
SELECT outbox.current_root() AS after_rollback;

-- A savepoint that rolls back undoes the context set inside it; one that is
-- released keeps it.
BEGIN;
SELECT outbox.set_context('01890000-0000-7000-8000-0000000000a1');
SAVEPOINT a;
SELECT outbox.set_context('01890000-0000-7000-8000-0000000000a2');
SAVEPOINT b;
SELECT outbox.set_context('01890000-0000-7000-8000-0000000000a3');
SELECT outbox.current_root() AS in_b;
ROLLBACK TO SAVEPOINT b;
SELECT outbox.current_root() AS after_rollback_to_b;
RELEASE SAVEPOINT b;
SELECT outbox.current_root() AS after_release_b;
ROLLBACK TO SAVEPOINT a;
SELECT outbox.current_root() AS after_rollback_to_a;
SAVEPOINT c;
SELECT outbox.set_context('01890000-0000-7000-8000-0000000000c1', NULL);
RELEASE SAVEPOINT c;
SELECT outbox.current_root() AS after_release_c;
SELECT outbox.emit('Ctx', 'c3', 'E', '{}') AS last_emit \gset
SELECT root_id, causation_id FROM outbox.events WHERE event_id = :'last_emit';
SAVEPOINT d;
SELECT outbox.set_context('01890000-0000-7000-8000-0000000000d1');
ROLLBACK TO SAVEPOINT d;
SELECT outbox.current_root() AS after_rollback_to_d;
COMMIT;

-- A context set in a subtransaction that plpgsql rolls back on error is undone.
BEGIN;
DO $$
BEGIN
    BEGIN
        PERFORM outbox.set_context('01890000-0000-7000-8000-0000000000e1');
        RAISE EXCEPTION 'boom';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
END $$;
SELECT outbox.current_root() AS after_exception_block;
COMMIT;

-- Context is per transaction, not per session, even outside a block.
SELECT outbox.set_context('01890000-0000-7000-8000-0000000000f1');
SELECT outbox.current_root() AS next_statement;

SELECT expect_error($$SELECT outbox.set_context(NULL)$$);
