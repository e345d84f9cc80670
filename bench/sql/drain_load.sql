-- Loads :n events with outbox.emit() in one transaction, shaped like the
-- baseline's bench_driver.py load: four aggregate types (one topic each),
-- 1000 distinct keys, a small JSON payload with :pad characters of padding.
SELECT count(outbox.emit(
           (ARRAY['order', 'payment', 'shipment', 'customer'])[1 + i % 4],
           'agg-' || (i % 1000),
           (ARRAY['OrderCreated', 'PaymentCaptured', 'ShipmentDispatched', 'CustomerUpdated'])[1 + i % 4],
           jsonb_build_object('seq', i, 'amount', (i % 997) * 1.5, 'currency', 'EUR',
                              'customer', 'cust-' || (i % 5000), 'note', repeat('x', :pad),
                              'ts', extract(epoch FROM clock_timestamp()))))
  FROM generate_series(1, :n) AS i;
