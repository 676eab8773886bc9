-- The rows one signed push delivery adds, as the controller writes them on
-- PostgreSQL (controller/src/db/push_intake.rs: `record_push_deliveries`):
-- a build id reserved, the body looked up among replays, the delivery claimed with its record, its build and
-- its job, in one transaction; nothing else (no HTTP, no signature check,
-- no batching). Client n pushes to the site `bench-(n % 20)`.
\set r random(1, 1000000000000)
BEGIN;
SELECT nextval(pg_get_serial_sequence('builds', 'id')) AS build_id,
  (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT AS now,
  (SELECT id FROM sites WHERE name = 'bench-' || (:client_id % 20)) AS site_id \gset
SELECT body_key, dedupe_key FROM webhook_deliveries WHERE body_key IN ('github:' || (:client_id || '-' || :now || '-' || :r));
INSERT INTO webhook_deliveries (source, delivery_id, dedupe_key, event, action, repository,
  outcome, message, build_ids, received_at, handled_at, body_key)
  VALUES ('github', (:client_id || '-' || :now || '-' || :r), 'github:' || (:client_id || '-' || :now || '-' || :r), 'push', NULL, 'octo/bench-' || (:client_id % 20),
  'queued', 'queued 1 build', :build_id::TEXT, :now, :now, (:client_id || '-' || :now || '-' || :r))
  ON CONFLICT (dedupe_key) DO UPDATE SET outcome = excluded.outcome, message = excluded.message,
  build_ids = excluded.build_ids, received_at = excluded.received_at, handled_at = excluded.handled_at,
  body_key = excluded.body_key
  WHERE webhook_deliveries.outcome = 'failed'
  OR (webhook_deliveries.outcome = 'processing' AND webhook_deliveries.received_at < :now - 600000)
  RETURNING id, dedupe_key;
INSERT INTO builds (id, site_id, context, branch, commit_sha, commit_message, author,
  trigger, state, created_at, pr_number, from_fork, skip_reason, finished_at)
  VALUES (:build_id, :site_id, 'production', 'main', (:client_id || '-' || :now || '-' || :r), 'bench', 'bench', 'push', 'queued', :now,
  NULL, 0, NULL, NULL);
INSERT INTO jobs (build_id, state, created_at, required_labels)
  VALUES (:build_id, 'queued', :now, (SELECT required_labels FROM sites WHERE id = :site_id));
END;
