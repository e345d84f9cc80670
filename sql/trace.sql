-- outbox.trace(): the event tree of one process root.
\pset null '(null)'

-- Order saga in one database: OrderCreated is the root; two services
-- react to it; one reaction causes a further event. The payment service
-- lives elsewhere: its event is known here only because we processed it.
BEGIN;
SELECT outbox.emit('Order', 'o-1', 'OrderCreated', '{}') AS root \gset
COMMIT;

BEGIN;
SELECT outbox.try_process('stock', :'root', :'root');
SELECT outbox.emit('Stock', 's-1', 'StockReserved', '{}') AS stock \gset
COMMIT;

BEGIN;
SELECT outbox.try_process('mailer', :'root', :'root');
SELECT outbox.emit('Mail', 'm-1', 'ConfirmationSent', '{}') AS mail \gset
COMMIT;

-- An event of the same process from another service's outbox (a payment),
-- known here because the orders service processed it; its reply hangs below it.
BEGIN;
SELECT outbox.try_process('orders', '01890000-0000-7000-8000-0000000000e7', :'root');
SELECT outbox.emit('Order', 'o-1', 'OrderPaid', '{}') AS paid \gset
COMMIT;

BEGIN;
SELECT outbox.try_process('audit', :'stock', :'root');
SELECT outbox.emit('Stock', 's-1', 'StockAudited', '{}') AS audited \gset
COMMIT;

-- An unrelated process is not part of it.
SELECT outbox.emit('Order', 'o-2', 'OrderCreated', '{}') IS NOT NULL AS other_root;

SELECT depth, event_type, aggregate_type, aggregate_id, status, processed_by,
       causation_id IS NULL AS is_root, created_at IS NOT NULL AS has_time
FROM outbox.trace(:'root');

-- Parents come before their children.
SELECT bool_and(p.ord < c.ord) AS parents_first
FROM (SELECT row_number() OVER () AS ord, * FROM outbox.trace(:'root')) c
JOIN (SELECT row_number() OVER () AS ord, * FROM outbox.trace(:'root')) p ON p.event_id = c.causation_id;

SELECT count(*) AS unknown_root FROM outbox.trace('01890000-0000-7000-8000-00000000dead');
SELECT count(*) AS null_root FROM outbox.trace(NULL);
