// Threads, search and pins in two browser contexts through the demo page served by Envoy.
//
// Run by tests/clients/test_browser_threads.py, which starts the cluster, creates a group
// (Alice owns it, Bob is a member) and passes (env): WEB_URL, TOKEN_A, TOKEN_B, GROUP_ID, WORD
// (a word nobody else wrote), SCREENSHOT_DIR, [FAILURE_DIR], [CHROMIUM].
//
// Exit code 0 and a last line "E2E OK {json}" mean every step passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { env, launchChromium, scenario } from "./harness.mjs";

const WEB_URL = env("WEB_URL");
const TOKEN_A = env("TOKEN_A");
const TOKEN_B = env("TOKEN_B");
const GROUP_ID = env("GROUP_ID");
const WORD = env("WORD");
const SHOTS = env("SCREENSHOT_DIR");
const FAILURES = env("FAILURE_DIR", SHOTS);
mkdirSync(SHOTS, { recursive: true });
mkdirSync(FAILURES, { recursive: true });
const { summary, log, step, until, stepTimeout: STEP_TIMEOUT } = scenario();

const timeline = (page) => page.locator('[data-testid="message-text"]').allInnerTexts();
const inTimeline = async (page, text) => (await timeline(page)).some((t) => t.trim() === text);
const threadTexts = (page) => page.locator('[data-testid="thread-reply-text"]').allInnerTexts();
const messageByText = (page, text) =>
  page.locator('[data-testid="message"]', { has: page.locator('[data-testid="message-text"]', { hasText: text }) });

async function send(page, text) {
  const box = page.locator('[data-testid="composer"]');
  await box.fill(text);
  await box.press("Enter");
}

async function action(page, text, testid) {
  const msg = messageByText(page, text);
  await msg.hover();
  await msg.locator(`[data-testid="${testid}"]`).click();
}

async function waitLive(page, who) {
  await until(`${who}'s connection to be live`, async () =>
    (await page.locator('[data-testid="state"]').innerText()).trim() === "live",
  );
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

const browser = await launchChromium();
let exitCode = 0;
const alice = await (await browser.newContext({ viewport: { width: 1100, height: 720 } })).newPage();
const bob = await (await browser.newContext({ viewport: { width: 1100, height: 720 } })).newPage();
for (const [page, who] of [[alice, "Alice"], [bob, "Bob"]]) {
  page.on("pageerror", (err) => log(`${who} page error: ${err.message}`));
  page.on("dialog", (d) => void d.accept());
}

const question = `where is the quarterly ${WORD} report?`;
const answer = "in the shared drive";
const thanks = "thanks, found it";

try {
  await step("both open the group", async () => {
    await alice.goto(`${WEB_URL}?token=${TOKEN_A}#group=${GROUP_ID}`);
    await bob.goto(`${WEB_URL}?token=${TOKEN_B}#group=${GROUP_ID}`);
    await waitLive(alice, "Alice");
    await waitLive(bob, "Bob");
    await send(bob, question);
    await until("Alice to see the question", () => inTimeline(alice, question));
  });

  await step("Alice replies in a thread; it stays out of the timeline", async () => {
    await action(alice, question, "reply-in-thread");
    const panel = alice.locator('[data-testid="thread-panel"]');
    await panel.waitFor({ timeout: STEP_TIMEOUT });
    await panel.locator('[data-testid="thread-composer"]').fill(answer);
    await panel.locator('[data-testid="thread-composer"]').press("Enter");
    await until("the reply in Alice's panel", async () => (await threadTexts(alice)).includes(answer));
    await until("Bob to see '1 reply' live", async () =>
      (await messageByText(bob, question).locator('[data-testid="thread-replies"]').innerText()).trim() === "1 reply");
    if (await inTimeline(bob, answer)) throw new Error("a thread-only reply showed in Bob's timeline");
    if (await inTimeline(alice, answer)) throw new Error("a thread-only reply showed in Alice's timeline");
  });

  await step("Bob opens the thread and replies also to the group", async () => {
    // Bob wrote the parent: Alice's reply is an unread thread reply for him until he opens it.
    const badge = bob.locator('[data-testid="thread-unread"]');
    await until("Bob's unread-thread badge", async () => (await badge.count()) === 1 && (await badge.innerText()).includes("1"));
    await messageByText(bob, question).locator('[data-testid="thread-replies"]').click();
    await until("the reply in Bob's panel", async () => (await threadTexts(bob)).includes(answer));
    await until("the badge to go once the thread is read", async () => (await badge.count()) === 0);
    const panel = bob.locator('[data-testid="thread-panel"]');
    await panel.locator('[data-testid="thread-also-in-group"]').check();
    await panel.locator('[data-testid="thread-composer"]').fill(thanks);
    await panel.locator('[data-testid="thread-send"]').click();
    await until("Alice to see the reply in her timeline", () => inTimeline(alice, thanks));
    await until("and in her open thread", async () => (await threadTexts(alice)).join("|") === `${answer}|${thanks}`);
    await until("the parent's count", async () =>
      (await alice.locator('[data-testid="thread-count"]').innerText()).trim() === "2 replies");
    await shot(alice, "30-thread-panel");
    await alice.locator('[data-testid="thread-close"]').click();
  });

  await step("Alice pins the question; Bob sees it pinned live", async () => {
    await action(alice, question, "pin-message");
    await until("Bob's pin count", async () =>
      (await bob.locator('[data-testid="pins-toggle"]').innerText()).includes("1"));
    await messageByText(bob, question).locator('[data-testid="pinned-mark"]').waitFor({ timeout: STEP_TIMEOUT });
    await bob.locator('[data-testid="pins-toggle"]').click();
    const items = await bob.locator('[data-testid="pinned-item"]').allInnerTexts();
    if (items.length !== 1 || !items[0].includes(question)) throw new Error(`pinned: ${items}`);
    await shot(bob, "32-pins");
    await bob.locator('[data-testid="pins-toggle"]').click();
    if ((await bob.locator('[data-testid="pin-message"]').count()) !== 0) throw new Error("a member was offered Pin");
  });

  await step("Bob searches: highlighted snippets, thread replies open their thread", async () => {
    await send(bob, `a < b & ${WORD} <i>not markup</i>`);
    await until("Alice to see it", async () => (await timeline(alice)).some((t) => t.includes("a < b &")));
    await bob.locator('[data-testid="search-input"]').fill(WORD);
    await bob.locator('[data-testid="search-input"]').press("Enter");
    const hits = bob.locator('[data-testid="search-hit"]');
    await until("two hits", async () => (await hits.count()) === 2);
    const marks = await bob.locator('[data-testid="search-snippet"] mark').allInnerTexts();
    if (marks.length !== 2 || !marks.every((m) => m === WORD)) throw new Error(`marks: ${marks}`);
    if ((await bob.locator('[data-testid="search-results"] i').count()) !== 0) throw new Error("markup was rendered");
    const snippets = await bob.locator('[data-testid="search-snippet"]').allInnerTexts();
    if (!snippets.some((s) => s.includes("a < b &"))) throw new Error(`snippets: ${snippets}`);
    await shot(bob, "31-search");
    await bob.locator('[data-testid="search-close"]').click();
    await bob.locator('[data-testid="search-input"]').fill("shared drive");
    await bob.locator('[data-testid="search-input"]').press("Enter");
    await until("the thread reply found", async () => (await hits.count()) === 1);
    await hits.first().click();
    await until("its thread opened", async () => (await threadTexts(bob)).includes(answer));
  });

  console.log(`E2E OK ${JSON.stringify(summary)}`);
} catch (err) {
  exitCode = 1;
  console.log(`E2E FAILED: ${err?.stack ?? err}`);
  await alice.screenshot({ path: join(FAILURES, "threads-alice.png") }).catch(() => undefined);
  await bob.screenshot({ path: join(FAILURES, "threads-bob.png") }).catch(() => undefined);
} finally {
  await browser.close();
}
process.exit(exitCode);
