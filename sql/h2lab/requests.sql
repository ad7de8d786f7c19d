-- Each request's latency and where it went: from its HEADERS in to the
-- end of the write_socket that carried its answer (the first write of its
-- client that ends at or after the frame that ended its stream), cut
-- into components that sum to it. Time inside the client's actions goes
-- to the innermost action running (its own time); time outside them is
-- waiting: 'queued' before the answer, 'wait_for_write' after it. The
-- same rules as `h2lab analyze` (docs/analyze.md).

INCLUDE PERFETTO MODULE h2lab.slices;

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
WITH opened AS (
  SELECT client, stream, MIN(ts) AS start_ts
  FROM h2lab_slice
  WHERE category = 'frame-in' AND name = 'HEADERS in' AND stream != 0
  GROUP BY client, stream
), answered AS (
  SELECT o.client, o.stream, o.start_ts, (
    SELECT MIN(s.ts) FROM h2lab_slice s
    WHERE s.client = o.client AND s.stream = o.stream AND s.category = 'frame-out'
      AND s.name IN ('DATA out', 'HEADERS out') AND s.flags GLOB '*END_STREAM*'
      AND s.ts >= o.start_ts
  ) AS answered_ts
  FROM opened o
), written AS (
  SELECT a.*, (
    SELECT x.id FROM h2lab_slice x
    WHERE x.client = a.client AND x.name = 'write_socket' AND x.end_ts >= a.answered_ts
    ORDER BY x.end_ts LIMIT 1
  ) AS write_id
  FROM answered a
  WHERE a.answered_ts IS NOT NULL
)
SELECT
  ROW_NUMBER() OVER (ORDER BY w.client, w.start_ts, w.stream) AS id,
  w.client,
  w.stream,
  w.start_ts,
  w.answered_ts,
  w.write_id,
  s.end_ts,
  s.end_ts - w.start_ts AS latency
FROM written w
JOIN h2lab_slice s ON s.id = w.write_id;

-- Each request's two stretches: before its answer and after.
CREATE PERFETTO TABLE _h2lab_stretch AS
SELECT id AS request_id, client, start_ts AS from_ts, answered_ts AS to_ts, 0 AS after
FROM h2lab_request
UNION ALL
SELECT id, client, answered_ts, end_ts, 1
FROM h2lab_request;

-- Time of each stretch inside its client's actions, by component: each
-- action's overlap with the stretch, less its child actions' overlap.
CREATE PERFETTO TABLE _h2lab_stretch_busy AS
WITH overlaps AS (
  SELECT w.request_id, w.after, s.name, s.parent_id,
    MIN(s.end_ts, w.to_ts) - MAX(s.ts, w.from_ts) AS ns
  FROM _h2lab_stretch w
  JOIN h2lab_slice s ON s.client = w.client
  WHERE s.category IN ('action', 'conn') AND s.ts < w.to_ts AND s.end_ts > w.from_ts
), own AS (
  SELECT request_id, after, h2lab_component(name) AS component, ns FROM overlaps
  UNION ALL
  SELECT o.request_id, o.after, h2lab_component(p.name), -o.ns
  FROM overlaps o JOIN h2lab_slice p ON p.id = o.parent_id
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
WITH busy AS (
  SELECT request_id, component, SUM(ns) AS ns FROM _h2lab_stretch_busy GROUP BY 1, 2
), inside AS (
  SELECT request_id, after, SUM(ns) AS ns FROM _h2lab_stretch_busy GROUP BY 1, 2
)
SELECT r.id AS request_id, c.component, CASE c.component
    WHEN 'queued' THEN (r.answered_ts - r.start_ts)
      - COALESCE((SELECT ns FROM inside i WHERE i.request_id = r.id AND i.after = 0), 0)
    WHEN 'wait_for_write' THEN (r.end_ts - r.answered_ts)
      - COALESCE((SELECT ns FROM inside i WHERE i.request_id = r.id AND i.after = 1), 0)
    ELSE COALESCE((SELECT ns FROM busy b WHERE b.request_id = r.id AND b.component = c.component), 0)
  END AS dur
FROM h2lab_request r, h2lab_component_name c;

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
