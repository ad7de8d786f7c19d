-- h2lab's trace as tables: every slice of a client's track or of a poll
-- loop's, with the trace's own fields (docs/tracing.md), and the trace's
-- window. The base of the other h2lab modules.

-- Every h2lab slice: actions and connection events (category 'action',
-- 'conn'), frames (instants, 'frame-in' and 'frame-out') and the poll
-- loops' waits ('loop'). `client` is the client's id (its track's tid);
-- a loop's wait has client 0.
CREATE PERFETTO TABLE h2lab_slice(
  -- The slice's id.
  id LONG,
  -- Start, ns.
  ts LONG,
  -- Duration, ns (0 for a frame).
  dur LONG,
  -- End, ns.
  end_ts LONG,
  -- Action name, or frame type and direction ('HEADERS in').
  name STRING,
  -- 'action', 'conn', 'frame-in', 'frame-out' or 'loop'.
  category STRING,
  -- The client (0: a loop).
  client LONG,
  -- The enclosing slice, if any.
  parent_id LONG,
  -- Octets moved (actions), payload length (frames) or events (waits).
  bytes LONG,
  -- A frame's stream.
  stream LONG,
  -- A frame's flags by name, '|'-joined.
  flags STRING,
  -- A wait's run-queue delay, ns.
  runq_ns LONG
) AS
SELECT
  s.id,
  s.ts,
  s.dur,
  s.ts + s.dur AS end_ts,
  s.name,
  s.category,
  IIF(s.category = 'loop', 0, t.tid) AS client,
  s.parent_id,
  COALESCE(EXTRACT_ARG(s.arg_set_id, 'args.bytes'), EXTRACT_ARG(s.arg_set_id, 'args.length')) AS bytes,
  EXTRACT_ARG(s.arg_set_id, 'args.stream') AS stream,
  EXTRACT_ARG(s.arg_set_id, 'args.flags') AS flags,
  EXTRACT_ARG(s.arg_set_id, 'args.runq_ns') AS runq_ns
FROM slice s
JOIN thread_track tt ON s.track_id = tt.id
JOIN thread t USING (utid)
WHERE s.category IN ('action', 'conn', 'frame-in', 'frame-out', 'loop');

-- The trace's window: from the first client's first slice to the end of
-- the last slice (a loop's first wait, before any client, left out).
CREATE PERFETTO TABLE h2lab_window(
  -- Start, ns.
  start_ts LONG,
  -- End, ns.
  end_ts LONG,
  -- Its length, ns.
  dur LONG
) AS
SELECT
  (SELECT MIN(ts) FROM h2lab_slice WHERE client != 0) AS start_ts,
  (SELECT MAX(end_ts) FROM h2lab_slice) AS end_ts,
  (SELECT MAX(end_ts) FROM h2lab_slice) - (SELECT MIN(ts) FROM h2lab_slice WHERE client != 0) AS dur;

-- The component of a request's latency that time in an action falls in
-- (see h2lab.requests).
CREATE PERFETTO FUNCTION h2lab_component(
  -- An action's name.
  name STRING
)
-- 'read', 'decrypt', 'engine', 'work', 'encrypt', 'write' or 'other'.
RETURNS STRING AS
SELECT CASE $name
  WHEN 'read_socket' THEN 'read'
  WHEN 'handshake' THEN 'decrypt'
  WHEN 'decrypt' THEN 'decrypt'
  WHEN 'engine' THEN 'engine'
  WHEN 'work' THEN 'work'
  WHEN 'encrypt' THEN 'encrypt'
  WHEN 'move_encrypted' THEN 'encrypt'
  WHEN 'write_socket' THEN 'write'
  ELSE 'other'
END;

-- The nearest-rank percentile's rank: the least rank with at least
-- `pct` per cent of `n` values at or below it.
CREATE PERFETTO FUNCTION h2lab_rank(
  -- Values in all.
  n LONG,
  -- The percentile, in per cent (50, 90, 99, 100).
  pct LONG
)
-- A rank from 1 to n.
RETURNS LONG AS
SELECT MAX(1, ($n * $pct + 99) / 100);
