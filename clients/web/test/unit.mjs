// Checks of the library build (dist-lib/chat-web.js) in Node: SHA-256 (the fallback used in
// insecure contexts) against known digests, backoff bounds, position stores, token decoding.
// Run by tests/clients/test_web_client.py after `npm run build:lib`.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

const lib = await import("../dist-lib/chat-web.js");

test("sha256 fallback matches node:crypto", async () => {
  const { sha256Hex } = lib;
  const savedCrypto = globalThis.crypto;
  for (const size of [0, 1, 55, 56, 63, 64, 65, 1000, 70_000]) {
    const bytes = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
    const expected = createHash("sha256").update(bytes).digest("hex");
    // Without WebCrypto (an http:// page on another host), the TypeScript implementation runs.
    Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
    try {
      assert.equal(await sha256Hex(new Blob([bytes])), expected, `size ${size}`);
    } finally {
      Object.defineProperty(globalThis, "crypto", { value: savedCrypto, configurable: true });
    }
    assert.equal(await sha256Hex(new Blob([bytes])), expected, `webcrypto, size ${size}`);
  }
});

test("backoff grows exponentially, is capped and jittered", () => {
  const { backoffDelay, DEFAULT_BACKOFF } = lib;
  const opts = { ...DEFAULT_BACKOFF, jitter: 0 };
  assert.deepEqual([0, 1, 2, 3].map((a) => backoffDelay(a, opts)), [500, 1000, 2000, 4000]);
  assert.equal(backoffDelay(30, opts), DEFAULT_BACKOFF.maxMs);
  const low = backoffDelay(3, DEFAULT_BACKOFF, () => 0);
  const high = backoffDelay(3, DEFAULT_BACKOFF, () => 1);
  assert.equal(low, 2000);
  assert.equal(high, 4000);
});

test("position stores round-trip bigints", () => {
  const { MemoryPositionStore, WebStoragePositionStore } = lib;
  const data = new Map([["7", { lastSeq: 12345678901234n, lastUpdateSeq: 3n }]]);
  const mem = new MemoryPositionStore();
  mem.save(data);
  assert.deepEqual(mem.load(), data);
  const backing = new Map();
  const storage = {
    getItem: (k) => backing.get(k) ?? null,
    setItem: (k, v) => backing.set(k, v),
  };
  const web = new WebStoragePositionStore(storage, "k");
  web.save(data);
  assert.deepEqual(web.load(), data);
  backing.set("k", "{not json");
  assert.equal(web.load().size, 0);
});

test("decodeToken reads sub and name", () => {
  const { decodeToken } = lib;
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const token = `${part({ alg: "HS256" })}.${part({ sub: "42", name: "Zoë", exp: 9 })}.sig`;
  assert.deepEqual(decodeToken(token), { userId: 42n, name: "Zoë", exp: 9 });
  assert.throws(() => decodeToken("nope"));
});

test("client_msg_ids are UUIDs", () => {
  const ids = new Set(Array.from({ length: 100 }, () => lib.newClientMsgId()));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("the user id comes from the token however it is given (string, function, promise)", async () => {
  const { ChatConnection, MemoryPositionStore } = lib;
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const token = `${part({ alg: "HS256" })}.${part({ sub: "42", name: "Zoë" })}.sig`;
  const opts = { baseUrl: "http://127.0.0.1:1", positionStore: new MemoryPositionStore() };
  for (const given of [token, () => token, () => Promise.resolve(token)]) {
    const conn = new ChatConnection({ ...opts, token: given });
    const identity = await conn.identity();
    assert.equal(identity.userId, 42n);
    assert.equal(conn.userId, 42n);
    assert.equal(conn.userName, "Zoë");
  }
  const opaque = new ChatConnection({ ...opts, token: () => "not-a-jwt" });
  await assert.rejects(opaque.identity());
  assert.equal(opaque.userId, 0n);
});

test("search snippets split at their highlights, in code points, never as HTML", () => {
  const { splitHighlights } = lib;
  const parts = splitHighlights("<b>é🎉 report</b> & more", [{ offset: 6, length: 6 }]);
  assert.deepEqual(parts, [
    { text: "<b>é🎉 ", mark: false },
    { text: "report", mark: true },
    { text: "</b> & more", mark: false },
  ]);
  // ranges out of bounds or overlapping are dropped, not thrown
  assert.deepEqual(splitHighlights("abc", [{ offset: 2, length: 5 }, { offset: 0, length: 1 }]), [
    { text: "a", mark: true },
    { text: "bc", mark: false },
  ]);
});
