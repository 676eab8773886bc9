-- How long each step of a build took, as its runner reported them with the
-- outcome: a JSON array of {"name", "millis"} in the order the steps ran.
-- NULL when the runner reported none (protocol 9) or the build never ran.
ALTER TABLE builds ADD COLUMN step_timings TEXT;
