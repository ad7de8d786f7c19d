-- The poll loops' time over the trace's window: busy, idle (waiting for
-- events) and descheduled (ready to run but not running: the waits'
-- run-queue delay). Only dispatches that record their waits (poll) have
-- rows here.

INCLUDE PERFETTO MODULE h2lab.slices;

-- One row when the trace holds a loop's waits.
CREATE PERFETTO TABLE h2lab_loop_time(
  -- Loops (poll reactors) that waited.
  loops LONG,
  -- The window times the loops, ns.
  wall_ns LONG,
  -- Not waiting, ns.
  busy_ns LONG,
  -- Waiting for events, less the run-queue delay, ns.
  idle_ns LONG,
  -- Ready to run but not running, ns.
  descheduled_ns LONG
) AS
WITH waits AS (
  SELECT
    MIN(s.end_ts, w.end_ts) - MAX(s.ts, w.start_ts) AS waited,
    COALESCE(s.runq_ns, 0) AS runq
  FROM h2lab_slice s, h2lab_window w
  WHERE s.category = 'loop' AND s.end_ts > w.start_ts AND s.ts < w.end_ts
), loops AS (
  SELECT COUNT(DISTINCT track_id) AS n
  FROM slice WHERE category = 'loop'
), sums AS (
  SELECT
    (SELECT n FROM loops) AS loops,
    (SELECT dur FROM h2lab_window) * (SELECT n FROM loops) AS wall_ns,
    SUM(waited) AS waited,
    SUM(runq) AS runq
  FROM waits
)
SELECT
  loops,
  wall_ns,
  wall_ns - MIN(waited, wall_ns) AS busy_ns,
  MIN(waited, wall_ns) - MIN(runq, MIN(waited, wall_ns)) AS idle_ns,
  MIN(runq, MIN(waited, wall_ns)) AS descheduled_ns
FROM sums
WHERE loops > 0 AND waited IS NOT NULL;
