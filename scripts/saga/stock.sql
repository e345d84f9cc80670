-- The stock service (database "stock"): reserves stock for new orders, and
-- gives it back when the payment fails (the compensation).
CREATE EXTENSION IF NOT EXISTS outbox_ext;
DO $$ BEGIN CREATE ROLE stock_svc; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT EXECUTE ON FUNCTION outbox.emit(text, text, text, jsonb, jsonb, text, text) TO stock_svc;

CREATE TABLE stock (product text PRIMARY KEY, available int NOT NULL CHECK (available >= 0));
INSERT INTO stock VALUES ('widget', 20), ('gadget', 6), ('gizmo', 0);
CREATE TABLE reservations (order_id text PRIMARY KEY, product text NOT NULL, qty int NOT NULL,
                           status text NOT NULL);
GRANT SELECT, UPDATE ON stock TO stock_svc;
GRANT SELECT, INSERT, UPDATE ON reservations TO stock_svc;

CREATE FUNCTION on_saga_event(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := event -> 'payload';
    o text := p ->> 'order';
    r public.reservations;
BEGIN
    CASE event ->> 'event_type'
    WHEN 'OrderCreated' THEN
        UPDATE public.stock SET available = available - (p ->> 'qty')::int
        WHERE product = p ->> 'product' AND available >= (p ->> 'qty')::int;
        IF FOUND THEN
            INSERT INTO public.reservations VALUES (o, p ->> 'product', (p ->> 'qty')::int, 'RESERVED');
            PERFORM outbox.emit('Stock', o, 'StockDecreased', p);
        ELSE
            PERFORM outbox.emit('Stock', o, 'StockDecreaseFailed', p);
        END IF;
    WHEN 'PaymentFailed' THEN
        -- Compensation: put the reserved quantity back.
        UPDATE public.reservations SET status = 'RELEASED' WHERE order_id = o AND status = 'RESERVED'
        RETURNING * INTO r;
        IF FOUND THEN
            UPDATE public.stock SET available = available + r.qty WHERE product = r.product;
            PERFORM outbox.emit('Stock', o, 'StockIncreased', jsonb_build_object('order', o, 'product', r.product, 'qty', r.qty));
        END IF;
    ELSE
        NULL;
    END CASE;
END $$;
GRANT EXECUTE ON FUNCTION on_saga_event(jsonb) TO stock_svc;

SELECT outbox.subscribe('stock', '{outbox.event.Order,outbox.event.Payment}', 'on_saga_event(jsonb)',
                        '{"run_as": "stock_svc", "kafka": {"fetch.wait.max.ms": 10}}');
