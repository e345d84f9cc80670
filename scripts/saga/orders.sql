-- The orders service (database "orders"): places orders, and settles them
-- from what stock and payments report. Its handler runs as orders_svc.
CREATE EXTENSION IF NOT EXISTS outbox_ext;
DO $$ BEGIN CREATE ROLE orders_svc; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT EXECUTE ON FUNCTION outbox.emit(text, text, text, jsonb, jsonb, text, text) TO orders_svc;

CREATE TABLE orders (
    id      text PRIMARY KEY,
    product text NOT NULL,
    qty     int NOT NULL,
    amount  numeric NOT NULL,
    card    text NOT NULL,
    status  text NOT NULL DEFAULT 'PENDING',
    reason  text
);
GRANT SELECT, UPDATE ON orders TO orders_svc;

-- The business write and its event commit together.
CREATE FUNCTION place_order(id text, product text, qty int, amount numeric, card text)
RETURNS uuid LANGUAGE sql AS $$
    INSERT INTO orders (id, product, qty, amount, card) VALUES (id, product, qty, amount, card);
    SELECT outbox.emit('Order', id, 'OrderCreated',
                       jsonb_build_object('order', id, 'product', product, 'qty', qty,
                                          'amount', amount, 'card', card));
$$;

-- Choreography: the order ends Completed or Cancelled.
CREATE FUNCTION on_saga_event(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o text := event -> 'payload' ->> 'order';
BEGIN
    CASE event ->> 'event_type'
    WHEN 'PaymentCreated' THEN
        UPDATE public.orders SET status = 'COMPLETED' WHERE id = o AND status = 'PENDING';
        PERFORM outbox.emit('Order', o, 'OrderCompleted', jsonb_build_object('order', o));
    WHEN 'StockDecreaseFailed' THEN
        UPDATE public.orders SET status = 'CANCELLED', reason = 'out of stock' WHERE id = o AND status = 'PENDING';
        PERFORM outbox.emit('Order', o, 'OrderCancelled', jsonb_build_object('order', o, 'reason', 'out of stock'));
    WHEN 'PaymentFailed' THEN
        UPDATE public.orders SET status = 'CANCELLED', reason = 'payment failed' WHERE id = o AND status = 'PENDING';
        PERFORM outbox.emit('Order', o, 'OrderCancelled', jsonb_build_object('order', o, 'reason', 'payment failed'));
    ELSE
        NULL;   -- StockDecreased, StockIncreased: nothing to do here
    END CASE;
END $$;
GRANT EXECUTE ON FUNCTION on_saga_event(jsonb) TO orders_svc;

SELECT outbox.subscribe('orders', '{outbox.event.Stock,outbox.event.Payment}', 'on_saga_event(jsonb)',
                        '{"run_as": "orders_svc", "kafka": {"fetch.wait.max.ms": 10}}');
