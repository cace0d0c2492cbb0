// A lighter load-generator worker for loadtest.bench (`--client node`): the same commands as the
// Python worker (setup, run, drain, stop; one JSON line each way over stdin/stdout), the same
// checks (every message once, in order) and the same latency histogram, but gRPC is spoken on
// Node's own HTTP/2 (nghttp2, in C) with no gRPC library, and a delivery is decoded only as far
// as the three fields the checks read. Reading a delivered frame costs the Python worker ~35 us
// of CPU (grpc.aio); at 20,000 deliveries/s that is most of a core on a 2-core machine, which is
// what this client exists to avoid (BENCHMARKS.md, issue 14).
//
// Wire facts used (proto/chat.proto): SubscribeRequest.positions = 1 {group_id = 1,
// last_seq = 2}; SubscribeResponse.events = 1; ChatEvent.message = 1; MessageResponse
// group_id = 2, seq = 9, timestamp_ms = 11 (StreamMessages returns MessageResponse itself);
// SendMessageRequest group_id = 1, content = 2, client_msg_id = 4.

import http2 from "node:http2";
import readline from "node:readline";
import { performance } from "node:perf_hooks";

const STATUS = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
  "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
  "DATA_LOSS", "UNAUTHENTICATED"];
const STREAMS_PER_SESSION = 100; // Envoy admits 100 concurrent streams per connection
const SEND_SESSIONS = 4;
const MAX_INFLIGHT = 1000;
const SEND_TIMEOUT_MS = 10_000;
const CONTENT = "benchmark message: a typical short chat line of about sixty characters";

const [target, index] = process.argv.slice(2);
const nowMs = () => performance.timeOrigin + performance.now();

// ---- protobuf, by hand: only what the benchmark sends and reads ----

function varint(n, out) {
  while (n >= 128) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

function field(num, payload, out) { // length-delimited field
  varint(num * 8 + 2, out);
  varint(payload.length, out);
  for (const b of payload) out.push(b);
}

function intField(num, n, out) {
  varint(num * 8, out);
  varint(n, out);
}

function grpcFrame(bytes) {
  const buf = Buffer.alloc(5 + bytes.length);
  buf.writeUInt32BE(bytes.length, 1);
  Buffer.from(bytes).copy(buf, 5);
  return buf;
}

function subscribeRequest(last) {
  const out = [];
  for (const [gid, seq] of last) {
    const pos = [];
    intField(1, gid, pos);
    intField(2, seq, pos);
    field(1, pos, out);
  }
  return grpcFrame(out);
}

function sendRequest(gid, clientMsgId) {
  const out = [];
  intField(1, gid, out);
  field(2, Buffer.from(CONTENT), out);
  field(4, Buffer.from(clientMsgId), out);
  return grpcFrame(out);
}

// Returns [value, next position]; numbers stay exact below 2^53.
function readVarint(buf, pos) {
  let value = 0;
  let mul = 1;
  let b;
  do {
    b = buf[pos++];
    value += (b & 127) * mul;
    mul *= 128;
  } while (b & 128);
  return [value, pos];
}

function skip(buf, pos, wire) {
  if (wire === 0) return readVarint(buf, pos)[1];
  if (wire === 1) return pos + 8;
  if (wire === 5) return pos + 4;
  if (wire === 2) {
    const [len, p] = readVarint(buf, pos);
    return p + len;
  }
  throw new Error(`wire type ${wire}`);
}

// MessageResponse bytes [start, end) -> [group_id, seq, timestamp_ms]
function readMessage(buf, start, end) {
  let gid = 0, seq = 0, ts = 0, pos = start;
  while (pos < end) {
    let tag;
    [tag, pos] = readVarint(buf, pos);
    const num = Math.floor(tag / 8), wire = tag & 7;
    if (wire === 0 && (num === 2 || num === 9 || num === 11)) {
      let v;
      [v, pos] = readVarint(buf, pos);
      if (num === 2) gid = v; else if (num === 9) seq = v; else ts = v;
    } else {
      pos = skip(buf, pos, wire);
    }
  }
  return [gid, seq, ts];
}

// SubscribeResponse bytes -> the messages among its events
function readEvents(buf, start, end, onMessage) {
  let pos = start;
  while (pos < end) {
    let tag, len;
    [tag, pos] = readVarint(buf, pos);
    if (tag !== 10) { pos = skip(buf, pos, tag & 7); continue; } // events = 1
    [len, pos] = readVarint(buf, pos);
    const evEnd = pos + len;
    let p = pos;
    while (p < evEnd) {
      let t, l;
      [t, p] = readVarint(buf, p);
      if (t !== 10) { p = skip(buf, p, t & 7); continue; } // ChatEvent.message = 1
      [l, p] = readVarint(buf, p);
      onMessage(readMessage(buf, p, p + l));
      p += l;
    }
    pos = evEnd;
  }
}

// ---- statistics: the Python worker's, field for field ----

function bucket(ms) {
  if (ms < 10) return ms > 0 ? Math.round(ms * 100) / 100 : 0;
  if (ms < 100) return Math.round(ms * 10) / 10;
  if (ms < 1000) return Math.round(ms);
  return Math.round(ms / 10) * 10;
}

class Hist {
  constructor() { this.counts = new Map(); }
  add(ms) { const b = bucket(ms); this.counts.set(b, (this.counts.get(b) || 0) + 1); }
  pairs() { return [...this.counts].sort((a, b) => a[0] - b[0]); }
}

const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

function deliverStats() {
  return { deliveries: 0, duplicates: 0, gaps: 0, unexpected: 0, batches: 0, first_ms: 0,
    last_ms: 0, latency: new Hist(), reconnects: 0, stream_errors: {} };
}

// ---- connections ----

class Sessions {
  constructor() { this.list = []; }
  get(i) {
    let s = this.list[i];
    if (!s || s.closed || s.destroyed) {
      s = http2.connect(`http://${target}`, { settings: { enablePush: false,
        initialWindowSize: 1 << 20 } });
      s.on("error", () => {});
      s.on("connect", () => s.setLocalWindowSize(8 << 20));
      this.list[i] = s;
    }
    return s;
  }
  closeAll() { for (const s of this.list) if (s && !s.destroyed) s.close(); }
}

function grpcHeaders(path, token) {
  return { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers",
    authorization: `Bearer ${token}` };
}

// ---- the worker ----

class Worker {
  constructor() {
    this.subs = [];
    this.senders = [];
    this.subSessions = new Sessions();
    this.sendSessions = new Sessions();
    this.d = deliverStats();
    this.s = null;
    this.stopping = false;
    this.counter = 0;
    this.runTag = `node${process.pid}-${Math.floor(Math.random() * 2 ** 30)}`;
    this.inflight = 0;
    this.opening = 0;
    this.waitingToOpen = [];
  }

  async setup(arg) {
    this.seed = Boolean(arg.seed);
    // Streams opening at once (0: all of them, as a reconnect storm does).
    this.openLimit = arg.open_at_once === 0 ? Infinity : Number(arg.open_at_once ?? 50);
    this.senders = arg.senders.map(([, token, gid]) => [token, gid]);
    const started = performance.now();
    const ready = [];
    arg.subs.forEach(([uid, token, heads], i) => {
      const sub = { uid, token, session: Math.floor(i / STREAMS_PER_SESSION),
        last: new Map(Object.entries(heads).map(([g, s]) => [Number(g), s])),
        ready: false, failed: null, down: false };
      let resolve;
      sub.readyPromise = new Promise((r) => { resolve = r; });
      sub.resolveReady = resolve;
      this.subs.push(sub);
      ready.push(sub.readyPromise);
      this.open(sub);
    });
    const timeout = Number(arg.timeout ?? 120) * 1000;
    await Promise.race([Promise.all(ready), new Promise((r) => setTimeout(r, timeout))]);
    const failures = {};
    for (const sub of this.subs) if (!sub.ready && sub.failed) bump(failures, sub.failed);
    return { subscribed: this.subs.filter((s) => s.ready).length, expected: this.subs.length,
      seconds: Math.round((performance.now() - started) / 10) / 100, failures };
  }

  // At most `openLimit` streams opening at once (50, like the Python worker).
  open(sub) {
    if (this.opening >= this.openLimit) { this.waitingToOpen.push(sub); return; }
    this.opening += 1;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.opening -= 1;
      const next = this.waitingToOpen.shift();
      if (next) this.open(next);
    };
    this.stream(sub, release);
  }

  stream(sub, release) {
    const path = this.seed ? "/chat.ChatService/StreamMessages" : "/chat.ChatService/Subscribe";
    const req = this.subSessions.get(sub.session).request(grpcHeaders(path, sub.token));
    sub.req = req;
    let buf = Buffer.alloc(0);
    let status = null;
    req.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) status = Number(headers["grpc-status"]);
      else { sub.ready = true; sub.resolveReady(); }
      release();
    });
    req.on("trailers", (t) => { status = Number(t["grpc-status"]); });
    req.on("data", (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let pos = 0;
      const found = [];
      while (buf.length - pos >= 5) {
        const len = buf.readUInt32BE(pos + 1);
        if (buf.length - pos - 5 < len) break;
        const start = pos + 5;
        if (this.seed) found.push(readMessage(buf, start, start + len));
        else readEvents(buf, start, start + len, (m) => found.push(m));
        pos = start + len;
      }
      buf = pos === buf.length ? Buffer.alloc(0) : buf.subarray(pos);
      if (found.length) this.onMessages(sub, found);
    });
    req.on("error", () => { if (status === null) status = 14; });
    req.on("close", () => {
      release();
      if (this.stopping) return;
      const name = status === null || status === 0 ? "ENDED_BY_SERVER" : STATUS[status] || `${status}`;
      if (name !== "ENDED_BY_SERVER") sub.failed = name;
      bump(this.d.stream_errors, name);
      this.d.reconnects += 1; // resume from the last seq received, as documented clients do
      setTimeout(() => { if (!this.stopping) this.open(sub); }, 200);
    });
    if (this.seed) return; // StreamMessages: authenticated by metadata, live from now on
    req.end(subscribeRequest(sub.last));
  }

  onMessages(sub, messages) {
    const now = nowMs();
    const st = this.d;
    const last = sub.last;
    let n = 0;
    for (const [gid, seq, ts] of messages) {
      const prev = last.get(gid);
      if (prev === undefined) { st.unexpected += 1; continue; }
      if (seq === prev + 1) last.set(gid, seq);
      else if (seq <= prev) { st.duplicates += 1; continue; } else {
        st.gaps += seq - prev - 1;
        last.set(gid, seq);
      }
      n += 1;
      st.latency.add(now - ts);
    }
    if (n) {
      st.deliveries += n;
      st.batches += 1;
      if (!st.first_ms) st.first_ms = now;
      st.last_ms = now;
    }
  }

  send(token, gid) {
    const st = this.s;
    this.counter += 1;
    const session = this.sendSessions.get(this.counter % SEND_SESSIONS);
    const body = sendRequest(gid, `${this.runTag}-${this.counter}`);
    st.attempted += 1;
    const t0 = performance.now();
    return new Promise((resolve) => {
      const headers = grpcHeaders("/chat.ChatService/SendMessage", token);
      headers["grpc-timeout"] = `${SEND_TIMEOUT_MS}m`;
      const req = session.request(headers);
      let status = null;
      const timer = setTimeout(() => { status = 4; req.close(http2.constants.NGHTTP2_CANCEL); },
        SEND_TIMEOUT_MS);
      req.on("response", (h) => { if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]); });
      req.on("trailers", (t) => { status = Number(t["grpc-status"]); });
      req.on("data", () => {});
      req.on("error", () => { if (status === null) status = 14; });
      req.on("close", () => {
        clearTimeout(timer);
        if (status === 0) {
          st.latency.add(performance.now() - t0);
          st.acked += 1;
          st.last_ack_ms = nowMs();
        } else {
          bump(st.errors, STATUS[status ?? 2] || `${status}`);
        }
        resolve();
      });
      req.end(body);
    });
  }

  async run(arg) {
    this.s = { attempted: 0, acked: 0, not_sent: 0, errors: {}, latency: new Hist(),
      start_ms: nowMs(), last_ack_ms: 0 };
    this.d = deliverStats();
    const duration = Number(arg.duration) * 1000;
    if (!this.senders.length) await sleep(duration);
    else if (arg.mode === "open") {
      await this.openLoop(Number(arg.rate), duration, Number(arg.phase ?? 0));
    }
    else await this.closedLoop(Number(arg.concurrency), duration);
    const st = this.s;
    return { attempted: st.attempted, acked: st.acked, not_sent: st.not_sent, errors: st.errors,
      latency: st.latency.pairs(), start_ms: st.start_ms, last_ack_ms: st.last_ack_ms };
  }

  // `rate` sends a second for `duration`, the first `phase` of an interval late.
  async openLoop(rate, duration, phase) {
    const total = Math.floor(rate * duration / 1000);
    const interval = 1000 / rate;
    await sleep(phase * interval);
    const start = performance.now();
    const pending = new Set();
    let n = 0;
    while (n < total) {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      while (n < due) {
        if (this.inflight >= MAX_INFLIGHT) this.s.not_sent += 1;
        else {
          const [token, gid] = this.senders[n % this.senders.length];
          this.inflight += 1;
          const p = this.send(token, gid).then(() => { this.inflight -= 1; pending.delete(p); });
          pending.add(p);
        }
        n += 1;
      }
      if (n < total) await sleep(Math.max(0, start + n * interval - performance.now()));
    }
    await Promise.all([...pending]);
  }

  async closedLoop(concurrency, duration) {
    const end = performance.now() + duration;
    const lane = async (k) => {
      for (let i = k; performance.now() < end; i += concurrency) {
        const [token, gid] = this.senders[i % this.senders.length];
        await this.send(token, gid);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, (_, k) => lane(k)));
  }

  async drain(arg) {
    const heads = arg.heads;
    const deadline = performance.now() + Number(arg.timeout) * 1000;
    const behind = () => {
      let missing = 0;
      for (const sub of this.subs) {
        for (const [g, s] of sub.last) {
          const h = heads[String(g)];
          if (h !== undefined && h > s) missing += h - s;
        }
      }
      return missing;
    };
    let missing = behind();
    while (missing && performance.now() < deadline) {
      await sleep(50);
      missing = behind();
    }
    const st = this.d;
    return { deliveries: st.deliveries, duplicates: st.duplicates, gaps: st.gaps,
      unexpected: st.unexpected, missing, batches: st.batches, first_ms: st.first_ms,
      last_ms: st.last_ms, latency: st.latency.pairs(), reconnects: st.reconnects,
      stream_errors: st.stream_errors, subscribers_down: 0 };
  }

  stop() {
    this.stopping = true;
    for (const sub of this.subs) if (sub.req && !sub.req.destroyed) sub.req.close(http2.constants.NGHTTP2_CANCEL);
    this.subSessions.closeAll();
    this.sendSessions.closeAll();
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const worker = new Worker();
const lines = readline.createInterface({ input: process.stdin });
const reply = (status, value) => process.stdout.write(`${JSON.stringify([status, value])}\n`);
lines.on("line", async (line) => {
  const [cmd, arg] = JSON.parse(line);
  try {
    if (cmd === "setup") reply("ok", await worker.setup(arg));
    else if (cmd === "run") reply("ok", await worker.run(arg));
    else if (cmd === "drain") reply("ok", await worker.drain(arg));
    else if (cmd === "stop") {
      worker.stop();
      reply("ok", null);
      setTimeout(() => process.exit(0), 100);
    } else reply("error", `unknown command ${cmd}`);
  } catch (err) {
    reply("error", `${err.name}: ${err.message} (node worker ${index})`);
  }
});
lines.on("close", () => process.exit(0));
