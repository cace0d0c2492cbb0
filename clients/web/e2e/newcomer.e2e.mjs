// A newcomer's path in the browser (issue 18, items 6-8), run by
// tests/clients/test_browser_newcomer.py against a real cluster. Env: WEB_URL, TOKEN_A, NAME_A,
// USER_A, TOKEN_D, NAME_D, USER_D (Dave: a member the service has never seen, so it does not
// know his name yet), GROUP_ID, SCREENSHOT_DIR, [FAILURE_DIR], [CHROMIUM].
//
// 1. Alice uses embed.html: GroupChat mounted exactly as the README's Laravel section shows
//    (`token: () => window.chatToken`); her own messages are recognised (own side, Edit/Delete,
//    "Seen by").
// 2. Dave signs in on a phone (390 px): Alice's member list, typing line and "Seen by" show
//    "Dave" instead of "user N", without a reload.
// 3. Phone layout: one pane at a time (back button / group list), a usable composer, grouped
//    consecutive messages, newest message and its "Seen by" line in view; then 1280 px.
// Screenshots are checked with bounding boxes. Last line "E2E OK {json}" means every step passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { env, launchChromium, scenario } from "./harness.mjs";

const WEB_URL = env("WEB_URL").replace(/\/+$/, "");
const TOKEN_A = env("TOKEN_A");
const NAME_A = env("NAME_A", "Alice");
const USER_A = env("USER_A");
const TOKEN_D = env("TOKEN_D");
const NAME_D = env("NAME_D", "Dave");
const USER_D = env("USER_D");
const GROUP_ID = env("GROUP_ID");
const SHOTS = env("SCREENSHOT_DIR");
const FAILURES = env("FAILURE_DIR", SHOTS);
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const STEP_TIMEOUT = Number(env("STEP_TIMEOUT_MS", "20000"));
mkdirSync(SHOTS, { recursive: true });
mkdirSync(FAILURES, { recursive: true });

const { summary, log, step, until } = scenario(STEP_TIMEOUT);

function check(ok, what) {
  if (!ok) throw new Error(what);
}

const exactly = (text) => new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`);
const messageByText = (page, text) =>
  page.locator('[data-testid="message"]', {
    has: page.locator('[data-testid="message-text"]', { hasText: exactly(text) }),
  });

async function send(page, text) {
  const box = page.locator('[data-testid="composer"]');
  await box.fill(text);
  await box.press("Enter");
  await until(`"${text}" to be stored`, async () => (await messageByText(page, text).count()) === 1);
}

async function box(locator) {
  return (await locator.isVisible()) ? locator.boundingBox() : null;
}

/** `inner` lies within `outer` (1 px of rounding allowed). */
const inside = (inner, outer) =>
  inner !== null &&
  outer !== null &&
  inner.x >= outer.x - 1 &&
  inner.y >= outer.y - 1 &&
  inner.x + inner.width <= outer.x + outer.width + 1 &&
  inner.y + inner.height <= outer.y + outer.height + 1;

function watchConsole(page, who) {
  page.on("pageerror", (err) => log(`${who} page error: ${err.message}`));
}

const browser = await launchChromium(CHROMIUM);
const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const ctxD = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true });
const alice = await ctxA.newPage();
const dave = await ctxD.newPage();
watchConsole(alice, NAME_A);
watchConsole(dave, NAME_D);
let exitCode = 0;

try {
  await step("Alice's page embeds GroupChat as the README shows (token function)", async () => {
    const q = new URLSearchParams({ token: TOKEN_A, group: GROUP_ID, name: "Newcomers" });
    await alice.goto(`${WEB_URL}/embed.html?${q}`);
    await alice.locator('[data-testid="composer"]').waitFor({ timeout: STEP_TIMEOUT });
    await until("the embed's connection to know Alice", async () =>
      (await alice.evaluate(() => String(window.chatEmbed.connection.userId))) === USER_A,
    );
    await send(alice, "mine, sent from the embed");
    const mine = messageByText(alice, "mine, sent from the embed");
    await until("Alice's message on her own side", async () => (await mine.getAttribute("data-own")) === "true");
    check((await mine.locator('[data-testid="edit-message"]').count()) === 1, "no Edit on Alice's own message");
    check((await mine.locator('[data-testid="delete-message"]').count()) === 1, "no Delete on Alice's own message");
    const seeded = messageByText(alice, "seeded by Alice 1");
    check((await seeded.getAttribute("data-own")) === "true", "history: Alice's earlier message shown as someone else's");
  });

  await step("Dave is 'user N' until he signs in", async () => {
    const daveItem = alice.locator(`[data-testid="member"][data-user-id="${USER_D}"]`);
    await until("Dave in Alice's member list", async () => (await daveItem.count()) === 1);
    check((await daveItem.innerText()).includes(`user ${USER_D}`), "Dave's name known before he ever signed in?");
  });

  await step("Dave signs in on a phone: Alice sees his name, live", async () => {
    await dave.goto(`${WEB_URL}/?token=${TOKEN_D}#group=${GROUP_ID}`);
    await dave.locator('[data-testid="composer"]').waitFor({ timeout: STEP_TIMEOUT });
    const daveName = alice.locator(`[data-testid="member"][data-user-id="${USER_D}"] [data-testid="member-name"]`);
    await until("Alice's member list to name Dave", async () => (await daveName.innerText()).trim() === NAME_D);
    await dave.locator('[data-testid="composer"]').fill("typing on the phone");
    await until("Alice to see 'Dave is typing'", async () =>
      (await alice.locator('[data-testid="typing-indicator"]').innerText()).includes(`${NAME_D} is typing`),
    );
    await dave.locator('[data-testid="composer"]').fill("");
    const seen = messageByText(alice, "mine, sent from the embed").locator('[data-testid="seen-by"]');
    await until("Alice to see 'Seen by Dave'", async () => (await seen.count()) === 1 && (await seen.innerText()).includes(NAME_D));
    check(!(await alice.locator("body").innerText()).includes(`user ${USER_D}`), "'user N' still shown on Alice's page");
  });

  await step("phone: one pane, usable composer, grouped messages, newest + Seen by in view", async () => {
    const vw = 390;
    check((await box(dave.locator('[data-testid="sidebar"]'))) === null, "sidebar visible beside the chat at 390 px");
    const back = await box(dave.locator('[data-testid="back"]'));
    check(back !== null && back.width >= 24 && back.height >= 24, `back button missing or tiny: ${JSON.stringify(back)}`);
    const screen = { x: 0, y: 0, width: vw, height: 844 };
    const composer = await box(dave.locator('[data-testid="composer"]'));
    const sendBtn = await box(dave.locator('[data-testid="send"]'));
    check(inside(composer, screen) && composer.width >= 200 && composer.height >= 24, `composer: ${JSON.stringify(composer)}`);
    check(inside(sendBtn, screen), `send button off screen: ${JSON.stringify(sendBtn)}`);
    const pageWidth = await dave.evaluate(() => document.documentElement.scrollWidth);
    check(pageWidth <= vw, `page scrolls sideways (${pageWidth} px)`);

    // Consecutive messages of one sender: one name for the run (Dave speaks in between).
    await send(dave, "hi, Dave here");
    await until("Alice to get Dave's message", async () => (await messageByText(alice, "hi, Dave here").count()) === 1);
    await send(alice, "first of a run");
    await send(alice, "second of a run");
    const first = messageByText(dave, "first of a run");
    const second = messageByText(dave, "second of a run");
    await until("Dave to get the run", async () => (await second.count()) === 1);
    check((await first.getAttribute("data-grouped")) === "false", "the run's first message should carry the name");
    check((await first.locator('[data-testid="author"]').innerText()).trim() === NAME_A, "author of the run");
    check((await second.getAttribute("data-grouped")) === "true", "second message not grouped");
    check((await second.locator('[data-testid="author"]').count()) === 0, "name repeated in a run");

    // Dave posts; Alice (at the bottom of her view) reads it; Dave's view keeps it and "Seen by" visible.
    await send(dave, "from the phone");
    const mine = messageByText(dave, "from the phone");
    const seen = mine.locator('[data-testid="seen-by"]');
    await until("Dave to see 'Seen by Alice'", async () => (await seen.count()) === 1 && (await seen.innerText()).includes(NAME_A));
    const scroller = dave.locator('[data-testid="messages"]');
    await until("the newest message and its Seen by in view", async () => {
      const area = await box(scroller);
      return inside(await box(mine), area) && inside(await box(seen), area);
    });
    check(inside(await box(scroller), screen), "message list wider or taller than the screen");
    await dave.screenshot({ path: join(SHOTS, "14-phone-390-chat.png") });

    await dave.locator('[data-testid="back"]').click();
    const side = await until("the group list", () => box(dave.locator('[data-testid="sidebar"]')));
    check(side.width >= vw - 2, `group list not full width: ${JSON.stringify(side)}`);
    check((await box(dave.locator('[data-testid="composer"]'))) === null, "chat still shown beside the list");
    await dave.screenshot({ path: join(SHOTS, "15-phone-390-groups.png") });
    await dave.locator(`[data-testid="group"][data-group-id="${GROUP_ID}"]`).click();
    await dave.locator('[data-testid="composer"]').waitFor({ timeout: STEP_TIMEOUT });
  });

  await step("1280 px: list and chat side by side", async () => {
    await dave.setViewportSize({ width: 1280, height: 800 });
    const side = await until("the sidebar at 1280 px", () => box(dave.locator('[data-testid="sidebar"]')));
    const chat = await box(dave.locator('[data-testid="messages"]'));
    const composer = await box(dave.locator('[data-testid="composer"]'));
    check((await box(dave.locator('[data-testid="back"]'))) === null, "back button shown on a wide screen");
    check(chat !== null && side.x + side.width <= chat.x + 1, "sidebar and chat overlap");
    check(chat.width >= 800 && composer !== null && composer.width >= 600, `chat too narrow: ${JSON.stringify(chat)}`);
    await until("newest message in view at 1280 px", async () =>
      inside(await box(messageByText(dave, "from the phone")), await box(dave.locator('[data-testid="messages"]'))),
    );
    await dave.screenshot({ path: join(SHOTS, "16-desktop-1280.png") });
    await alice.screenshot({ path: join(SHOTS, "17-embed-1280.png") });
  });

  console.log(`E2E OK ${JSON.stringify(summary)}`);
} catch (err) {
  exitCode = 1;
  console.log(`E2E FAILED: ${err?.stack ?? err}`);
  await alice.screenshot({ path: join(FAILURES, "failure-alice.png") }).catch(() => undefined);
  await dave.screenshot({ path: join(FAILURES, "failure-dave.png") }).catch(() => undefined);
} finally {
  await browser.close();
}
process.exit(exitCode);
