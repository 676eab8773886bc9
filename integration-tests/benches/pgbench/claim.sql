-- One lease and its completion as the controller runs them on PostgreSQL
-- (controller/src/db/builds.rs: `claim_unlimited_among` with the 64-job
-- head, then `finish_job`), with nothing around them: no HTTP, no runner
-- token check, no events. Client n plays the runner `sim-n`, whose id is
-- looked up in the claim itself (the controller knows it already).
\set lease_millis 6000
SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT AS now \gset
WITH head AS MATERIALIZED (SELECT j.id FROM jobs j WHERE j.state = 'queued'
    AND array_remove(string_to_array(j.required_labels, ','), '') <@ string_to_array('', ',')
    ORDER BY j.id LIMIT 64),
  candidate AS (
    SELECT j.id, s.max_concurrent_builds AS site_limit
    FROM head h JOIN jobs j ON j.id = h.id JOIN builds b ON b.id = j.build_id JOIN sites s ON s.id = b.site_id
    WHERE j.state = 'queued'
    AND array_remove(string_to_array(j.required_labels, ','), '') <@ string_to_array('', ',')
    AND (s.max_concurrent_builds = 0 OR s.max_concurrent_builds >
      (SELECT COUNT(*) FROM jobs j2 JOIN builds b2 ON b2.id = j2.build_id
       WHERE j2.state = 'leased' AND b2.site_id = b.site_id))
    ORDER BY j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED),
  claimed AS (UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_id = 'pgbench-' || :client_id || '-' || :now,
    runner_name = 'sim-' || :client_id, runner_id = (SELECT id FROM runners WHERE name = 'sim-' || :client_id),
    lease_expires_at = :now + :lease_millis, leased_at = :now
    FROM candidate WHERE jobs.id = candidate.id AND candidate.site_limit = 0
    AND jobs.state = 'queued' RETURNING jobs.id, jobs.build_id, jobs.attempt),
  started AS (UPDATE builds SET state = 'running',
    started_at = COALESCE(started_at, :now) WHERE id IN (SELECT build_id FROM claimed)),
  attempted AS (INSERT INTO attempts (build_id, attempt, runner_name, started_at)
    SELECT build_id, attempt, 'pgbench-' || :client_id, :now FROM claimed)
SELECT COALESCE(candidate.id, 0) AS job_id, (SELECT COUNT(*) FROM head) AS looked_at
FROM (SELECT 1) one LEFT JOIN candidate ON true LEFT JOIN claimed ON claimed.id = candidate.id \gset
-- The 64 oldest all taken by other clients: the whole queue, as the
-- controller does next.
\if :job_id = 0 and :looked_at >= 64
WITH candidate AS (
    SELECT j.id, s.max_concurrent_builds AS site_limit
    FROM jobs j JOIN builds b ON b.id = j.build_id JOIN sites s ON s.id = b.site_id
    WHERE j.state = 'queued'
    AND array_remove(string_to_array(j.required_labels, ','), '') <@ string_to_array('', ',')
    AND (s.max_concurrent_builds = 0 OR s.max_concurrent_builds >
      (SELECT COUNT(*) FROM jobs j2 JOIN builds b2 ON b2.id = j2.build_id
       WHERE j2.state = 'leased' AND b2.site_id = b.site_id))
    ORDER BY j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED),
  claimed AS (UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_id = 'pgbench-' || :client_id || '-' || :now,
    runner_name = 'sim-' || :client_id, runner_id = (SELECT id FROM runners WHERE name = 'sim-' || :client_id),
    lease_expires_at = :now + :lease_millis, leased_at = :now
    FROM candidate WHERE jobs.id = candidate.id AND candidate.site_limit = 0
    AND jobs.state = 'queued' RETURNING jobs.id, jobs.build_id, jobs.attempt),
  started AS (UPDATE builds SET state = 'running',
    started_at = COALESCE(started_at, :now) WHERE id IN (SELECT build_id FROM claimed)),
  attempted AS (INSERT INTO attempts (build_id, attempt, runner_name, started_at)
    SELECT build_id, attempt, 'pgbench-' || :client_id, :now FROM claimed)
SELECT COALESCE(candidate.id, 0) AS job_id
FROM (SELECT 1) one LEFT JOIN candidate ON true LEFT JOIN claimed ON claimed.id = candidate.id \gset
\endif
WITH finished AS (UPDATE jobs SET state = 'done', lease_expires_at = NULL
    WHERE id = :job_id AND lease_id = 'pgbench-' || :client_id || '-' || :now AND state = 'leased' RETURNING build_id, attempt),
  ended AS (UPDATE attempts SET ended_at = :now, outcome = 'cancelled' FROM finished
    WHERE attempts.build_id = finished.build_id AND attempts.attempt = finished.attempt),
  built AS (UPDATE builds SET state = 'cancelled', exit_code = NULL, error = NULL, skip_reason = NULL,
    deploy_id = COALESCE(NULL, deploy_id), finished_at = :now, step_timings = NULL
    WHERE id IN (SELECT build_id FROM finished) RETURNING id, site_id, started_at)
SELECT id, site_id, started_at FROM built;
