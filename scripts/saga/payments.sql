-- The payments service (database "payments"): charges orders whose stock is
-- reserved. Declined cards and amounts over the limit fail.
CREATE EXTENSION IF NOT EXISTS outbox_ext;
DO $$ BEGIN CREATE ROLE payments_svc; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT EXECUTE ON FUNCTION outbox.emit(text, text, text, jsonb, jsonb, text, text) TO payments_svc;

CREATE TABLE payments (order_id text PRIMARY KEY, amount numeric NOT NULL, status text NOT NULL);
GRANT SELECT, INSERT ON payments TO payments_svc;

CREATE FUNCTION on_saga_event(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := event -> 'payload';
    o text := p ->> 'order';
    ok boolean := p ->> 'card' <> 'declined' AND (p ->> 'amount')::numeric <= 1000;
BEGIN
    IF event ->> 'event_type' <> 'StockDecreased' THEN
        RETURN;
    END IF;
    INSERT INTO public.payments VALUES (o, (p ->> 'amount')::numeric, CASE WHEN ok THEN 'PAID' ELSE 'FAILED' END);
    PERFORM outbox.emit('Payment', o, CASE WHEN ok THEN 'PaymentCreated' ELSE 'PaymentFailed' END,
                        jsonb_build_object('order', o, 'amount', p -> 'amount'));
END $$;
GRANT EXECUTE ON FUNCTION on_saga_event(jsonb) TO payments_svc;

SELECT outbox.subscribe('payments', '{outbox.event.Stock}', 'on_saga_event(jsonb)',
                        '{"run_as": "payments_svc", "kafka": {"fetch.wait.max.ms": 10}}');
