-- Each request's latency and where it went: from its HEADERS in to the
-- end of the write_socket that carried its answer (the first write of its
-- client that ends at or after the frame that ended its stream), cut
-- into components that sum to it. Time inside the client's actions goes
-- to the innermost action running (its own time); time outside them is
-- waiting: 'queued' before the answer, 'wait_for_write' after it. The
-- same rules as `h2lab analyze` (docs/analyze.md).

INCLUDE PERFETTO MODULE h2lab.slices;
INCLUDE PERFETTO MODULE intervals.intersect;

-- One row per request answered and written within the trace.
CREATE PERFETTO TABLE h2lab_request(
  -- The request's number in the trace (by client, then start).
  id LONG,
  -- Its client.
  client LONG,
  -- Its stream.
  stream LONG,
  -- When its HEADERS came in, ns.
  start_ts LONG,
  -- When the frame that ended its stream went out, ns.
  answered_ts LONG,
  -- The write_socket slice that carried the answer.
  write_id LONG,
  -- The end of that write, ns.
  end_ts LONG,
  -- end_ts - start_ts, ns.
  latency LONG
) AS
WITH streams AS (
  -- A stream is never reused on a connection: its first HEADERS in
  -- opened it, the first frame out that ended it answered it.
  SELECT client, stream,
    MIN(IIF(category = 'frame-in' AND name = 'HEADERS in', ts, NULL)) AS start_ts,
    MIN(IIF(category = 'frame-out' AND name IN ('DATA out', 'HEADERS out')
            AND flags GLOB '*END_STREAM*', ts, NULL)) AS answered_ts
  FROM h2lab_slice
  WHERE category IN ('frame-in', 'frame-out') AND stream != 0
  GROUP BY client, stream
), events AS (
  -- Answers and writes of each client in one order: at equal times, the
  -- answer first (a write that ends as the answer is made carries it).
  SELECT client, answered_ts AS at, 0 AS is_write, stream, start_ts, answered_ts,
    NULL AS write_end, NULL AS write_id
  FROM streams
  WHERE start_ts IS NOT NULL AND answered_ts >= start_ts
  UNION ALL
  SELECT client, end_ts, 1, NULL, NULL, NULL, end_ts, id
  FROM h2lab_slice
  WHERE category = 'action' AND name = 'write_socket' AND client != 0
), carried AS (
  -- A client's writes are one after another: the first write at or
  -- after an answer has the least end (and id) of those after it.
  SELECT client, is_write, stream, start_ts, answered_ts,
    MIN(write_end) OVER later AS end_ts,
    MIN(write_id) OVER later AS write_id
  FROM events
  -- (Walked backwards, the frame only grows: SQLite then computes MIN
  -- as it goes, where a frame that shrinks from the front costs n².)
  WINDOW later AS (PARTITION BY client ORDER BY at DESC, is_write DESC
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
  ROW_NUMBER() OVER (ORDER BY client, start_ts, stream) AS id,
  client,
  stream,
  start_ts,
  answered_ts,
  write_id,
  end_ts,
  end_ts - start_ts AS latency
FROM carried
WHERE is_write = 0 AND end_ts IS NOT NULL;

-- Each request's two stretches: before its answer and after (id: the
-- request's times 2, plus 1 for after).
CREATE PERFETTO TABLE _h2lab_stretch AS
SELECT *
FROM (
  SELECT id * 2 AS id, id AS request_id, client, start_ts AS ts,
    answered_ts - start_ts AS dur, 0 AS after
  FROM h2lab_request
  UNION ALL
  SELECT id * 2 + 1, id, client, answered_ts, end_ts - answered_ts, 1
  FROM h2lab_request
)
ORDER BY ts;

-- The clients' actions, as intervals.
CREATE PERFETTO TABLE _h2lab_action_interval AS
SELECT id, ts, dur, client
FROM h2lab_slice
WHERE category IN ('action', 'conn') AND dur > 0 AND client != 0
ORDER BY ts;

-- Time of each stretch inside its client's actions, by component: each
-- action's overlap with the stretch, less its child actions' overlap.
CREATE PERFETTO TABLE _h2lab_stretch_busy AS
WITH overlaps AS (
  SELECT i.id_0 / 2 AS request_id, i.id_0 % 2 AS after, i.id_1 AS slice_id, i.dur AS ns
  FROM _interval_intersect!((_h2lab_stretch, _h2lab_action_interval), (client)) i
), own AS (
  SELECT o.request_id, o.after, h2lab_component(s.name) AS component, o.ns
  FROM overlaps o JOIN slice s ON s.id = o.slice_id
  UNION ALL
  SELECT o.request_id, o.after, h2lab_component(p.name), -o.ns
  FROM overlaps o
  JOIN slice s ON s.id = o.slice_id
  JOIN slice p ON p.id = s.parent_id
  WHERE p.category IN ('action', 'conn')
)
SELECT request_id, after, component, SUM(ns) AS ns
FROM own
GROUP BY request_id, after, component;

-- The components, in order.
CREATE PERFETTO TABLE h2lab_component_name(
  -- Its place.
  n LONG,
  -- Its name.
  component STRING
) AS
SELECT column1 AS n, column2 AS component FROM (VALUES
  (1, 'queued'), (2, 'read'), (3, 'decrypt'), (4, 'engine'), (5, 'work'),
  (6, 'encrypt'), (7, 'wait_for_write'), (8, 'write'), (9, 'other'));

-- Each request's time in each component, ns (0 where it spent none); a
-- request's components sum to its latency.
CREATE PERFETTO TABLE h2lab_request_component(
  -- The request (h2lab_request.id).
  request_id LONG,
  -- The component (h2lab_component_name).
  component STRING,
  -- Time, ns.
  dur LONG
) AS
WITH pieces AS (
  SELECT request_id, component, ns FROM _h2lab_stretch_busy
  UNION ALL
  -- Waiting: a stretch's time less its time inside actions.
  SELECT request_id, IIF(after = 0, 'queued', 'wait_for_write'), dur FROM _h2lab_stretch
  UNION ALL
  SELECT request_id, IIF(after = 0, 'queued', 'wait_for_write'), -ns FROM _h2lab_stretch_busy
  UNION ALL
  SELECT r.id, c.component, 0 FROM h2lab_request r, h2lab_component_name c
)
SELECT request_id, component, SUM(ns) AS dur
FROM pieces
GROUP BY request_id, component;

-- The requests' latency: count, mean and nearest-rank percentiles, ns.
CREATE PERFETTO TABLE h2lab_latency(
  -- Requests.
  requests LONG,
  -- Mean, ns.
  mean_ns DOUBLE,
  -- Median, ns.
  p50_ns LONG,
  -- 90th percentile, ns.
  p90_ns LONG,
  -- 99th percentile, ns.
  p99_ns LONG,
  -- Maximum, ns.
  max_ns LONG
) AS
WITH r AS (
  SELECT latency, ROW_NUMBER() OVER (ORDER BY latency) AS rn, COUNT(*) OVER () AS n
  FROM h2lab_request
)
SELECT
  COUNT(*) AS requests,
  AVG(latency) AS mean_ns,
  MAX(IIF(rn = h2lab_rank(n, 50), latency, NULL)) AS p50_ns,
  MAX(IIF(rn = h2lab_rank(n, 90), latency, NULL)) AS p90_ns,
  MAX(IIF(rn = h2lab_rank(n, 99), latency, NULL)) AS p99_ns,
  MAX(latency) AS max_ns
FROM r;

-- Each component over the requests: mean, share of the mean latency,
-- nearest-rank percentiles, ns.
CREATE PERFETTO TABLE h2lab_component_summary(
  -- Its place.
  n LONG,
  -- The component.
  component STRING,
  -- Mean, ns.
  mean_ns DOUBLE,
  -- Its mean over the mean latency.
  share DOUBLE,
  -- Median, ns.
  p50_ns LONG,
  -- 99th percentile, ns.
  p99_ns LONG,
  -- Maximum, ns.
  max_ns LONG
) AS
WITH r AS (
  SELECT component, dur,
    ROW_NUMBER() OVER (PARTITION BY component ORDER BY dur) AS rn,
    COUNT(*) OVER (PARTITION BY component) AS n
  FROM h2lab_request_component
)
SELECT
  c.n,
  c.component,
  AVG(r.dur) AS mean_ns,
  AVG(r.dur) / (SELECT mean_ns FROM h2lab_latency) AS share,
  MAX(IIF(rn = h2lab_rank(r.n, 50), dur, NULL)) AS p50_ns,
  MAX(IIF(rn = h2lab_rank(r.n, 99), dur, NULL)) AS p99_ns,
  MAX(dur) AS max_ns
FROM r JOIN h2lab_component_name c USING (component)
GROUP BY c.n, c.component
ORDER BY c.n;

-- Each client: its requests and their latency, ns.
CREATE PERFETTO TABLE h2lab_client_summary(
  -- The client.
  client LONG,
  -- Its requests.
  requests LONG,
  -- Median latency, ns.
  p50_ns LONG,
  -- 99th percentile, ns.
  p99_ns LONG,
  -- Maximum, ns.
  max_ns LONG
) AS
WITH r AS (
  SELECT client, latency,
    ROW_NUMBER() OVER (PARTITION BY client ORDER BY latency) AS rn,
    COUNT(*) OVER (PARTITION BY client) AS n
  FROM h2lab_request
)
SELECT
  client,
  COUNT(*) AS requests,
  MAX(IIF(rn = h2lab_rank(n, 50), latency, NULL)) AS p50_ns,
  MAX(IIF(rn = h2lab_rank(n, 99), latency, NULL)) AS p99_ns,
  MAX(latency) AS max_ns
FROM r
GROUP BY client
ORDER BY client;
