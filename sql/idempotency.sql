-- outbox.try_process() / try_process_root(): once per consumer and event / root.
\pset null '(null)'

SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000001') AS first;
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000001') AS again;
SELECT outbox.try_process('shipping', '01890000-0000-7000-8000-000000000001') AS other_consumer;
SELECT consumer, event_id, root_id, processed_at <= now() AS stamped
FROM outbox.processed_messages ORDER BY consumer;

-- true sets the ambient context: the handler's own events join the process.
BEGIN;
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000002',
                          '01890000-0000-7000-8000-0000000000ff') AS first;
SELECT outbox.current_root();
SELECT outbox.emit('Invoice', 'i-1', 'InvoiceIssued', '{}') AS last_emit \gset
SELECT root_id, causation_id FROM outbox.events WHERE event_id = :'last_emit';
COMMIT;
SELECT root_id FROM outbox.processed_messages WHERE event_id = '01890000-0000-7000-8000-000000000002';

-- Without a root id the event is taken as the root.
BEGIN;
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000003');
SELECT outbox.current_root();
COMMIT;

-- false leaves the context as it was.
BEGIN;
SELECT outbox.set_context('01890000-0000-7000-8000-0000000000aa');
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000001') AS duplicate;
SELECT outbox.current_root();
COMMIT;

-- A rolled-back handler leaves no record: the message can be processed again.
BEGIN;
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000004') AS first;
ROLLBACK;
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000004') AS retried;

-- The same with a savepoint: record and context both undone.
BEGIN;
SAVEPOINT h;
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000005') AS first;
ROLLBACK TO SAVEPOINT h;
SELECT outbox.current_root() AS context_after_rollback_to;
SELECT outbox.try_process('billing', '01890000-0000-7000-8000-000000000005') AS again_in_same_txn;
COMMIT;

-- Once per root.
SELECT outbox.try_process_root('saga', '01890000-0000-7000-8000-0000000000ff') AS first;
SELECT outbox.try_process_root('saga', '01890000-0000-7000-8000-0000000000ff') AS again;
SELECT outbox.try_process_root('audit', '01890000-0000-7000-8000-0000000000ff') AS other_consumer;
-- A root event's id is its root id: the two tables do not collide.
SELECT outbox.try_process('saga', '01890000-0000-7000-8000-0000000000ff') AS event_of_same_id;
BEGIN;
SELECT outbox.try_process_root('saga2', '01890000-0000-7000-8000-0000000000ff');
SELECT outbox.current_root() AS root_dedup_sets_no_context;
COMMIT;

-- Bad input.
SELECT expect_error($$SELECT outbox.try_process(NULL, '01890000-0000-7000-8000-000000000001')$$);
SELECT expect_error($$SELECT outbox.try_process('', '01890000-0000-7000-8000-000000000001')$$);
SELECT expect_error($$SELECT outbox.try_process('billing', NULL)$$);
SELECT expect_error($$SELECT outbox.try_process_root(NULL, '01890000-0000-7000-8000-000000000001')$$);
SELECT expect_error($$SELECT outbox.try_process_root('', '01890000-0000-7000-8000-000000000001')$$);
SELECT expect_error($$SELECT outbox.try_process_root('saga', NULL)$$);
