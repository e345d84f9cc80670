-- Inbox: subscribe()/unsubscribe() validation, the subscriptions view,
-- dedup ids of foreign messages, and retry_inbox_dead(). Consuming from
-- Kafka is tested in test/inbox/.
\pset null '(null)'

CREATE ROLE inbox_svc;
CREATE ROLE inbox_other;
CREATE TABLE public.inbox_seen (event_id uuid, root_id uuid, payload jsonb, by_role text);
GRANT INSERT ON public.inbox_seen TO inbox_svc;
CREATE FUNCTION public.inbox_handler(event jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO public.inbox_seen
    VALUES ((event ->> 'event_id')::uuid, outbox.current_root(), event -> 'payload', current_user)
$$;
CREATE FUNCTION public.inbox_failing(event jsonb) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no thanks' USING ERRCODE = 'P0001'; END $$;
CREATE FUNCTION public.inbox_two_args(event jsonb, extra int) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION public.inbox_text(event text) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION public.inbox_set(event jsonb) RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE PROCEDURE public.inbox_proc(event jsonb) LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON FUNCTION public.inbox_handler(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.inbox_handler(jsonb) TO inbox_svc;
GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text[], regprocedure, jsonb),
                          outbox.unsubscribe(text, boolean),
                          outbox.retry_inbox_dead(text, uuid),
                          outbox.current_root() TO inbox_svc, inbox_other;

-- A superuser's subscription would run its handler as a superuser: refused.
SELECT expect_error($$SELECT outbox.subscribe('orders', '{outbox.event.Order}', 'public.inbox_handler(jsonb)')$$);

SET ROLE inbox_svc;
-- Bad input, each with its own error.
SELECT expect_error($$SELECT outbox.subscribe('bad name', '{t}', 'public.inbox_handler(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{}', 'public.inbox_handler(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{"no spaces"}', 'public.inbox_handler(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', ARRAY[NULL]::text[], 'public.inbox_handler(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.no_such_handler(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_two_args(jsonb,int)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_text(text)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_set(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_proc(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)', '[]')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)', '{"wokers": 2}')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)', '{"workers": 0}')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)', '{"start": "middle"}')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)', '{"kafka": {"enable.auto.commit": "true"}}')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)', '{"kafka": {"no.such.property": "1"}}')$$);
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)', '{"run_as": "postgres"}')$$);
RESET ROLE;
-- A role that may not execute the handler.
SET ROLE inbox_other;
SELECT expect_error($$SELECT outbox.subscribe('c', '{t}', 'public.inbox_handler(jsonb)')$$);
RESET ROLE;

-- A good one, with options.
SET ROLE inbox_svc;
SELECT outbox.subscribe('orders', '{outbox.event.Order,outbox.event.Payment}', 'public.inbox_handler(jsonb)',
                        '{"workers": 2, "batch_size": 100, "max_attempts": 3, "retry_backoff_ms": 50,
                          "kafka": {"session.timeout.ms": 6000}}');
SELECT expect_error($$SELECT outbox.subscribe('orders', '{t}', 'public.inbox_handler(jsonb)')$$);
SELECT expect_error($$SELECT outbox.subscribe('orders2', '{t}', 'public.inbox_handler(jsonb)', '{"group": "orders"}')$$);
RESET ROLE;
SELECT consumer, topics, handler, run_as, group_id, state, worker_pids, partitions, processed, dead
FROM outbox.subscriptions;

-- Only the subscription's role (or a superuser) may remove it.
SET ROLE inbox_other;
SELECT expect_error($$SELECT outbox.unsubscribe('orders')$$);
RESET ROLE;

-- Messages without an id header get a deterministic UUIDv5 id.
SELECT outbox.inbox_message_id('payments', 3, 42) AS id,
       outbox.inbox_message_id('payments', 3, 42) = outbox.inbox_message_id('payments', 3, 42) AS stable,
       outbox.inbox_message_id('payments', 3, 43) <> outbox.inbox_message_id('payments', 3, 42) AS distinct_offsets,
       substr(outbox.inbox_message_id('payments', 3, 42)::text, 15, 1) AS version;

-- retry_inbox_dead(): a dead letter is handled once, as the subscription's role,
-- with the ambient context set; one processed since is only removed.
INSERT INTO outbox.inbox_dead_letters (consumer, topic, partition, "offset", event_id, event, error, attempts)
VALUES ('orders', 'outbox.event.Order', 0, 7, '01890000-0000-7000-8000-000000000071',
        '{"event_id": "01890000-0000-7000-8000-000000000071", "root_id": "01890000-0000-7000-8000-0000000000a1",
          "event_type": "OrderCreated", "payload": {"n": 1}}', 'boom', 3),
       ('orders', 'outbox.event.Order', 0, 9, '01890000-0000-7000-8000-000000000072',
        '{"event_id": "01890000-0000-7000-8000-000000000072", "root_id": null, "payload": {"n": 2}}', 'boom', 3),
       ('orders', 'outbox.event.Order', 1, 2, '01890000-0000-7000-8000-000000000073',
        '{"event_id": "01890000-0000-7000-8000-000000000073", "payload": {"n": 3}}', 'boom', 3);
SELECT outbox.try_process('orders', '01890000-0000-7000-8000-000000000073');
SET ROLE inbox_other;
SELECT expect_error($$SELECT outbox.retry_inbox_dead('orders')$$);
RESET ROLE;
SET ROLE inbox_svc;
SELECT outbox.retry_inbox_dead('orders', '01890000-0000-7000-8000-000000000071') AS one;
SELECT outbox.retry_inbox_dead('orders') AS rest;
SELECT outbox.retry_inbox_dead('orders') AS nothing_left;
RESET ROLE;
SELECT event_id, root_id, payload, by_role FROM public.inbox_seen ORDER BY event_id;
SELECT event_id, root_id, event_type FROM outbox.processed_messages
WHERE consumer = 'orders' ORDER BY event_id;
SELECT count(*) AS dead_left FROM outbox.inbox_dead_letters;
SELECT expect_error($$SELECT outbox.retry_inbox_dead('nobody')$$);

-- A failing handler aborts the call; nothing is removed.
INSERT INTO outbox._subscriptions (consumer, topics, handler, run_as, group_id)
VALUES ('failing', '{t}', 'public.inbox_failing(jsonb)', 'inbox_svc', 'failing');
GRANT EXECUTE ON FUNCTION public.inbox_failing(jsonb) TO inbox_svc;
INSERT INTO outbox.inbox_dead_letters (consumer, topic, partition, "offset", event_id, event, error, attempts)
VALUES ('failing', 't', 0, 1, '01890000-0000-7000-8000-000000000081', '{"payload": 1}', 'boom', 1);
SELECT expect_error($$SELECT outbox.retry_inbox_dead('failing')$$);
SELECT count(*) AS still_dead FROM outbox.inbox_dead_letters WHERE consumer = 'failing';

-- unsubscribe: false for an unknown consumer; forget drops offsets and dead letters.
INSERT INTO outbox.inbox_offsets (consumer, topic, partition, next_offset)
VALUES ('orders', 'outbox.event.Order', 0, 10);
SET ROLE inbox_svc;
SELECT outbox.unsubscribe('nobody') AS unknown;
SELECT outbox.unsubscribe('orders') AS removed;
RESET ROLE;
SELECT count(*) AS offsets_kept FROM outbox.inbox_offsets WHERE consumer = 'orders';
SELECT outbox.unsubscribe('failing', forget => true) AS removed;
SELECT count(*) AS dead_forgotten FROM outbox.inbox_dead_letters WHERE consumer = 'failing';
SELECT count(*) AS subscriptions_left FROM outbox.subscriptions;

DELETE FROM outbox.inbox_offsets;
DELETE FROM outbox.processed_messages;
DROP FUNCTION public.inbox_handler(jsonb), public.inbox_failing(jsonb),
              public.inbox_two_args(jsonb, int), public.inbox_text(text), public.inbox_set(jsonb);
DROP PROCEDURE public.inbox_proc(jsonb);
DROP TABLE public.inbox_seen;
REVOKE ALL ON FUNCTION outbox.subscribe(text, text[], regprocedure, jsonb),
                       outbox.unsubscribe(text, boolean),
                       outbox.retry_inbox_dead(text, uuid),
                       outbox.current_root() FROM inbox_svc, inbox_other;
DROP ROLE inbox_svc;
DROP ROLE inbox_other;
