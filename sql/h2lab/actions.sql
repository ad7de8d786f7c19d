-- Per action, over the whole trace: calls, inclusive and own time (less
-- the actions inside it), octets per call, and per request; the share of
-- the serving threads' busy time (the poll loops' time less their waits
-- where the trace has them, else the actions' own time).

INCLUDE PERFETTO MODULE h2lab.slices;
INCLUDE PERFETTO MODULE h2lab.loop;
INCLUDE PERFETTO MODULE h2lab.requests;

-- Each action slice of a client with its own time.
CREATE PERFETTO TABLE h2lab_action_own(
  -- The slice.
  id LONG,
  -- Its name.
  name STRING,
  -- Its duration, ns.
  dur LONG,
  -- Its duration less its child actions', ns.
  own_ns LONG,
  -- Octets it moved.
  bytes LONG
) AS
WITH pieces AS (
  SELECT id, dur, dur AS ns FROM h2lab_slice
  WHERE category IN ('action', 'conn') AND client != 0
  UNION ALL
  SELECT p.id, 0, -c.dur FROM h2lab_slice c JOIN slice p ON p.id = c.parent_id
  WHERE c.category IN ('action', 'conn') AND p.category IN ('action', 'conn')
), own AS (
  SELECT id, SUM(ns) AS own_ns FROM pieces GROUP BY id
)
SELECT o.id, s.name, s.dur, o.own_ns,
  COALESCE(EXTRACT_ARG(s.arg_set_id, 'args.bytes'), 0) AS bytes
FROM own o JOIN slice s ON s.id = o.id;

-- The serving threads' busy time, ns, and what it was taken from.
CREATE PERFETTO TABLE h2lab_busy(
  -- Busy time, ns.
  busy_ns LONG,
  -- 'loop' or 'actions'.
  source STRING
) AS
SELECT
  MAX(COALESCE((SELECT busy_ns FROM h2lab_loop_time), 0),
      (SELECT COALESCE(SUM(own_ns), 0) FROM h2lab_action_own)) AS busy_ns,
  IIF(EXISTS (SELECT 1 FROM h2lab_loop_time), 'loop', 'actions') AS source;

-- One row per action name.
CREATE PERFETTO TABLE h2lab_action_summary(
  -- The action.
  name STRING,
  -- Calls.
  count LONG,
  -- Calls per request.
  per_request DOUBLE,
  -- Inclusive time, ns.
  total_ns LONG,
  -- Own time, ns.
  self_ns LONG,
  -- Own time over the busy time.
  share_of_busy DOUBLE,
  -- Own time per request, ns.
  self_ns_per_request DOUBLE,
  -- Octets per call.
  octets_per_call DOUBLE
) AS
WITH req AS (SELECT MAX(COUNT(*), 1) * 1.0 AS n FROM h2lab_request)
SELECT
  name,
  COUNT(*) AS count,
  COUNT(*) / req.n AS per_request,
  SUM(dur) AS total_ns,
  SUM(own_ns) AS self_ns,
  SUM(own_ns) * 1.0 / MAX((SELECT busy_ns FROM h2lab_busy), 1) AS share_of_busy,
  SUM(own_ns) / req.n AS self_ns_per_request,
  AVG(bytes) AS octets_per_call
FROM h2lab_action_own, req
GROUP BY name;
