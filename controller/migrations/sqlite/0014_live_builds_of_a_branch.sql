-- A push supersedes the queued and running builds of its branch. The index
-- of every build of a branch grows with its history (each push to main,
-- ever), and the lookup walked all of it; this one holds live builds only,
-- so a push costs the same after ten thousand builds of its branch as
-- after one. Queries name the same condition so the planner can use it.
CREATE INDEX builds_branch_live ON builds (site_id, context, branch, id) WHERE state IN ('queued', 'running');
