// Two users in two browser contexts chat through the demo page served by Envoy.
//
// Run by tests/clients/test_browser_chat.py, which starts the cluster, seeds a group and
// passes (env): WEB_URL, TOKEN_A, TOKEN_B, NAME_A, NAME_B, GROUP_ID, SEED_COUNT,
// SCREENSHOT_DIR, IMAGE_FILE, [FAILURE_DIR], [CHROMIUM], [SCENARIO=all|chat|upload],
// [UPLOAD=required|optional|skip], [CONTROL=1], [TOKEN_C, NAME_C] (a third member who is offline
// until the presence step signs her in and out again).
//
// With CONTROL=1 the script asks its parent to restart the service pods by printing
// "CONTROL restart-pods" and waits for a line on stdin (the parent answers "ok").
//
// Exit code 0 and a last line "E2E OK {json}" mean every step passed.
import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { env, launchChromium, scenario } from "./harness.mjs";

const WEB_URL = env("WEB_URL");
const TOKEN_A = env("TOKEN_A");
const TOKEN_B = env("TOKEN_B");
const NAME_A = env("NAME_A", "Alice");
const NAME_B = env("NAME_B", "Bob");
const TOKEN_C = env("TOKEN_C", "");
const NAME_C = env("NAME_C", "Carol");
const GROUP_ID = env("GROUP_ID");
const SEED_COUNT = Number(env("SEED_COUNT", "0"));
const SHOTS = env("SCREENSHOT_DIR");
const FAILURES = env("FAILURE_DIR", SHOTS);
const IMAGE_FILE = env("IMAGE_FILE", "");
const UPLOAD = env("UPLOAD", "required");
// chat: everything but the upload; upload: sign in, then only the image upload; all: both.
const SCENARIO = env("SCENARIO", "all");
const CHAT = SCENARIO === "all" || SCENARIO === "chat";
const CONTROL = env("CONTROL", "0") === "1";
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const STEP_TIMEOUT = Number(env("STEP_TIMEOUT_MS", "20000"));

mkdirSync(SHOTS, { recursive: true });
mkdirSync(FAILURES, { recursive: true });
const { summary, log, step, until, t0 } = scenario(STEP_TIMEOUT);
summary.upload = "not run";

const stdinLines = CONTROL ? createInterface({ input: process.stdin })[Symbol.asyncIterator]() : null;
async function control(command) {
  if (!stdinLines) throw new Error(`CONTROL ${command} needs CONTROL=1`);
  console.log(`CONTROL ${command}`);
  const { value, done } = await stdinLines.next();
  if (done || value.trim() !== "ok") throw new Error(`control ${command} failed: ${value}`);
}

// ---- page helpers -------------------------------------------------------------------------------

const messageTexts = (page) => page.locator('[data-testid="message-text"]').allInnerTexts();

async function countText(page, text) {
  return (await messageTexts(page)).filter((t) => t.trim() === text).length;
}

async function waitText(page, text, who) {
  await until(`${who} to see "${text}"`, async () => (await countText(page, text)) >= 1);
  const n = await countText(page, text);
  if (n !== 1) throw new Error(`${who} sees "${text}" ${n} times`);
}

async function waitLive(page, who) {
  await until(`${who}'s connection to be live`, async () =>
    (await page.locator('[data-testid="state"]').innerText()).trim() === "live",
  );
}

function messageByText(page, text) {
  return page.locator('[data-testid="message"]', {
    has: page.locator('[data-testid="message-text"]', { hasText: text }),
  });
}

async function reactionCount(page, text, emoji) {
  const chip = messageByText(page, text).locator(`[data-testid="reaction"][data-emoji="${emoji}"]`);
  if ((await chip.count()) === 0) return 0;
  return Number(await chip.locator(".chat-reaction__count").innerText());
}

async function send(page, text) {
  const box = page.locator('[data-testid="composer"]');
  await box.fill(text);
  await box.press("Enter");
}

function messageById(page, id) {
  return page.locator(`[data-testid="message"][data-id="${id}"]`);
}

async function textOf(page, id) {
  const text = messageById(page, id).locator('[data-testid="message-text"]');
  return (await text.count()) === 1 ? (await text.innerText()).trim() : null;
}

/** "true"/"false" from the member list in the group header, null when not listed. */
async function onlineAttr(page, name) {
  const member = page.locator(`[data-testid="member"][data-name="${name}"]`);
  return (await member.count()) === 1 ? member.getAttribute("data-online") : null;
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

function watchConsole(page, who) {
  page.on("pageerror", (err) => log(`${who} page error: ${err.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") log(`${who} console: ${m.text()}`);
  });
}

// ---- the scenario -------------------------------------------------------------------------------

const browser = await launchChromium(CHROMIUM);

let exitCode = 0;
const ctxA = await browser.newContext({ viewport: { width: 1000, height: 720 } });
const ctxB = await browser.newContext({ viewport: { width: 1000, height: 720 } });
const alice = await ctxA.newPage();
const bob = await ctxB.newPage();
watchConsole(alice, NAME_A);
watchConsole(bob, NAME_B);

try {
  const firstMsg = "hello from the seed 1";
  const lastSeed = `hello from the seed ${SEED_COUNT}`;

  await step("both sign in with ?token=", async () => {
    await alice.goto(`${WEB_URL}?token=${TOKEN_A}#group=${GROUP_ID}`);
    await bob.goto(`${WEB_URL}?token=${TOKEN_B}${CHAT ? "" : `#group=${GROUP_ID}`}`);
    await waitLive(alice, NAME_A);
    await waitLive(bob, NAME_B);
    if ((await alice.url()).includes("token=")) throw new Error("token left in the address bar");
    if (SEED_COUNT > 0) await waitText(alice, lastSeed, NAME_A);
  });

  if (CHAT) {
    await step("infinite scroll back to the first message", async () => {
      if (SEED_COUNT <= 50) return;
      const before = await alice.locator('[data-testid="message"]').count();
      if ((await countText(alice, firstMsg)) !== 0) throw new Error("first page should not hold the first message");
      await until("older pages", async () => {
        await alice.locator('[data-testid="messages"]').evaluate((el) => (el.scrollTop = 0));
        return (await countText(alice, firstMsg)) === 1;
      });
      const after = await alice.locator('[data-testid="message"]').count();
      if (after <= before) throw new Error(`no older messages loaded (${before} -> ${after})`);
      await alice.locator('text=Beginning of the conversation').waitFor({ timeout: STEP_TIMEOUT });
      await alice.locator('[data-testid="messages"]').evaluate((el) => (el.scrollTop = el.scrollHeight));
    });

    let unreadBefore = 0;
    await step("Bob sees the group with its unread count", async () => {
      const badge = bob.locator(`[data-testid="group"][data-group-id="${GROUP_ID}"] [data-testid="unread"]`);
      await badge.waitFor({ timeout: STEP_TIMEOUT });
      unreadBefore = Number(await badge.innerText());
      if (!(unreadBefore >= SEED_COUNT)) throw new Error(`unread ${unreadBefore} < ${SEED_COUNT}`);
    });

    const hi = `Hi @${NAME_B} how are you?`;
    await step("Alice @mentions Bob with autocomplete and sends", async () => {
      const box = alice.locator('[data-testid="composer"]');
      await box.click();
      await box.pressSequentially(`Hi @${NAME_B.slice(0, 2)}`, { delay: 30 });
      const list = alice.locator('[data-testid="mention-suggestions"]');
      await list.waitFor({ timeout: STEP_TIMEOUT });
      const options = await list.locator("li").allInnerTexts();
      if (!options.map((o) => o.trim()).includes(`@${NAME_B}`)) throw new Error(`suggestions: ${options}`);
      await shot(alice, "01-alice-mention-autocomplete");
      await box.press("Enter"); // picks the suggestion
      const draft = await box.inputValue();
      if (draft !== `Hi @${NAME_B} `) throw new Error(`draft after pick: ${JSON.stringify(draft)}`);
      await box.pressSequentially("how are you?", { delay: 10 });
      await box.press("Enter");
      await waitText(alice, hi, NAME_A);
      const mention = messageByText(alice, hi).locator('[data-testid="mention"]');
      if ((await mention.innerText()) !== `@${NAME_B}`) throw new Error("mention not highlighted");
    });

    await step("Bob's unread count goes up live", async () => {
      const badge = bob.locator(`[data-testid="group"][data-group-id="${GROUP_ID}"] [data-testid="unread"]`);
      await until("unread +1", async () => Number(await badge.innerText()) === unreadBefore + 1);
      await shot(bob, "02-bob-unread-badge");
    });

    await step("Bob opens the group; Alice sees 'Seen by Bob'", async () => {
      await bob.locator(`[data-testid="group"][data-group-id="${GROUP_ID}"]`).click();
      await waitText(bob, hi, NAME_B);
      const mine = messageByText(bob, hi).locator(".chat-mention--me");
      if ((await mine.count()) !== 1) throw new Error("Bob's own mention is not highlighted");
      const seen = alice.locator('[data-testid="seen-by"]');
      await until("Seen by Bob", async () => (await seen.innerText()).includes(NAME_B));
      // The badge disappears once Bob read everything.
      await until("Bob's badge cleared", async () =>
        (await bob.locator(`[data-testid="group"][data-group-id="${GROUP_ID}"] [data-testid="unread"]`).count()) === 0,
      );
      await shot(alice, "03-alice-seen-by-bob");
    });

    const fine = "I'm fine, thanks!";
    await step("Alice sees Bob typing, then his message", async () => {
      const box = bob.locator('[data-testid="composer"]');
      await box.click();
      await box.pressSequentially(fine, { delay: 40 });
      const typing = alice.locator('[data-testid="typing-indicator"]');
      await until("typing indicator", async () => (await typing.innerText()).includes(`${NAME_B} is typing`));
      await shot(alice, "04-alice-sees-bob-typing");
      await box.press("Enter");
      await waitText(alice, fine, NAME_A);
      await until("typing indicator to clear", async () => (await typing.innerText()).trim() === "", 10_000);
    });

    await step("reactions: add, count on both sides, toggle", async () => {
      const msgA = messageByText(alice, fine);
      await msgA.hover();
      await msgA.locator('[data-testid="add-reaction"]').click();
      await msgA.locator('[data-testid="reaction-palette"] button[data-emoji="👍"]').click();
      await until("Alice 👍 1", async () => (await reactionCount(alice, fine, "👍")) === 1);
      await until("Bob sees 👍 1", async () => (await reactionCount(bob, fine, "👍")) === 1);
      await messageByText(bob, fine).locator('[data-testid="reaction"][data-emoji="👍"]').click();
      await until("Bob 👍 2", async () => (await reactionCount(bob, fine, "👍")) === 2);
      await until("Alice sees 👍 2", async () => (await reactionCount(alice, fine, "👍")) === 2);
      const pressed = await messageByText(alice, fine).locator('[data-testid="reaction"][data-emoji="👍"]').getAttribute("aria-pressed");
      if (pressed !== "true") throw new Error("Alice's own reaction is not marked as hers");
      await shot(bob, "05-bob-reactions");
      await messageByText(alice, fine).locator('[data-testid="reaction"][data-emoji="👍"]').click();
      await until("Bob sees 👍 1 again", async () => (await reactionCount(bob, fine, "👍")) === 1);
    });

    const during = "sent while Bob reloads";
    const after = "sent after Bob's reload";
    await step("Bob reloads and loses nothing", async () => {
      const reload = bob.reload();
      await send(alice, during);
      await reload;
      await waitLive(bob, NAME_B);
      for (const text of [hi, fine, during]) await waitText(bob, text, NAME_B);
      await send(alice, after);
      await waitText(bob, after, NAME_B);
      await shot(bob, "06-bob-after-reload");
    });

    if (CONTROL) {
      const offline = "sent while Bob's stream was down";
      await step("dropped stream: pods restart, Bob resumes from his positions", async () => {
        const reconnectsBefore = await bob.evaluate(() => window.chatDemo.connection.reconnects);
        // New Subscribe calls fail until unrouted, so Bob cannot come back before Alice posts.
        await bob.route("**/chat.ChatService/Subscribe", (route) => route.abort("connectionreset"));
        await control("restart-pods");
        await until("Bob's stream to be down", async () =>
          (await bob.locator('[data-testid="state"]').innerText()).trim() !== "live",
        );
        await send(alice, offline);
        await waitText(alice, offline, NAME_A);
        await bob.waitForTimeout(1500);
        if ((await countText(bob, offline)) !== 0) throw new Error("Bob got the message without a stream?");
        await shot(bob, "07-bob-reconnecting");
        await bob.unroute("**/chat.ChatService/Subscribe");
        await waitLive(bob, NAME_B);
        await waitText(bob, offline, NAME_B);
        for (const text of [hi, fine, during, after]) {
          const n = await countText(bob, text);
          if (n !== 1) throw new Error(`after resume Bob sees "${text}" ${n} times`);
        }
        const reconnects = await bob.evaluate(() => window.chatDemo.connection.reconnects);
        if (!(reconnects > reconnectsBefore)) throw new Error(`reconnects ${reconnectsBefore} -> ${reconnects}`);
        summary.reconnects = reconnects;
      });
    }

    const typo = "this message has a tpyo";
    const fixed = "this message has no typo";
    const doomed = "this message will be deleted";
    await step("Alice edits and deletes her messages; Bob sees both live", async () => {
      await send(alice, typo);
      await send(alice, doomed);
      await waitText(bob, typo, NAME_B);
      await waitText(bob, doomed, NAME_B);
      const editId = await messageByText(alice, typo).getAttribute("data-id");
      const deleteId = await messageByText(alice, doomed).getAttribute("data-id");
      // Bob is a plain member: no Edit or Delete on Alice's messages; Alice has both on hers.
      const bobActions = messageById(bob, editId).locator('[data-testid="edit-message"], [data-testid="delete-message"]');
      if ((await bobActions.count()) !== 0) throw new Error("Bob is offered Edit/Delete on Alice's message");
      const mineA = messageById(alice, editId);
      await mineA.hover();
      // Esc cancels without saving.
      await mineA.locator('[data-testid="edit-message"]').click();
      const box = mineA.locator('[data-testid="edit-box"]');
      await box.fill("never saved");
      await box.press("Escape");
      await until("the edit box to close", async () => (await box.count()) === 0);
      if ((await textOf(alice, editId)) !== typo) throw new Error("Esc did not cancel the edit");
      // Enter saves through EditMessage; Bob gets the `updated` event.
      await mineA.locator('[data-testid="edit-message"]').click();
      if ((await box.inputValue()) !== typo) throw new Error("the edit box does not start with the text");
      await box.fill(fixed);
      await box.press("Enter");
      for (const [page, who] of [[alice, NAME_A], [bob, NAME_B]]) {
        await until(`${who} to see the edit with "(edited)"`, async () =>
          (await textOf(page, editId)) === fixed &&
          (await messageById(page, editId).locator('[data-testid="edited"]').count()) === 1,
        );
      }
      // Delete asks first; Bob then sees a tombstone instead of the text.
      alice.once("dialog", (dialog) => void dialog.accept());
      await messageById(alice, deleteId).hover();
      await messageById(alice, deleteId).locator('[data-testid="delete-message"]').click();
      for (const [page, who] of [[alice, NAME_A], [bob, NAME_B]]) {
        await until(`${who} to see the tombstone`, async () =>
          (await messageById(page, deleteId).locator('[data-testid="message-deleted"]').count()) === 1 &&
          (await textOf(page, deleteId)) === null,
        );
      }
      if ((await countText(bob, doomed)) !== 0) throw new Error("Bob still sees the deleted text");
      await bob.locator('[data-testid="messages"]').evaluate((el) => (el.scrollTop = el.scrollHeight));
      await shot(bob, "12-bob-sees-edit-and-delete");
    });

    await step("presence: Bob sees who is online, live", async () => {
      await until(`${NAME_B} to see ${NAME_A} online`, async () => (await onlineAttr(bob, NAME_A)) === "true");
      // After the reload and the dropped stream Bob's own entry must be right too.
      await until(`${NAME_B} to see himself online`, async () => (await onlineAttr(bob, NAME_B)) === "true");
      if (TOKEN_C) {
        // Carol has never subscribed: offline, then online and offline again through PresenceEvents.
        if ((await onlineAttr(bob, NAME_C)) !== "false") throw new Error(`${NAME_C} should be listed offline`);
        const ctxC = await browser.newContext({ viewport: { width: 800, height: 600 } });
        const carol = await ctxC.newPage();
        watchConsole(carol, NAME_C);
        await carol.goto(`${WEB_URL}?token=${TOKEN_C}`);
        await waitLive(carol, NAME_C);
        await until(`${NAME_B} to see ${NAME_C} come online`, async () => (await onlineAttr(bob, NAME_C)) === "true");
        await ctxC.close();
        await until(`${NAME_B} to see ${NAME_C} go offline`, async () => (await onlineAttr(bob, NAME_C)) === "false");
      }
      await shot(bob, "13-presence");
    });

  }

  if (SCENARIO !== "chat" && UPLOAD !== "skip" && IMAGE_FILE) {
    await step("Alice uploads an image; both see it", async () => {
      // Dismiss errors left over from the restart (e.g. a typing refresh that hit no pod).
      for (const page of [alice, bob]) {
        const errors = page.locator('[data-testid="chat-error"]');
        if ((await errors.count()) > 0) {
          log(`dismissing earlier error: ${await errors.innerText()}`);
          await errors.click();
        }
      }
      await alice.locator('[data-testid="file-input"]').setInputFiles(IMAGE_FILE);
      await alice.locator('[data-testid="attachment-preview"] img').waitFor({ timeout: STEP_TIMEOUT });
      await shot(alice, "08-alice-image-preview");
      await alice.locator('[data-testid="composer"]').fill("a picture");
      await alice.locator('[data-testid="send"]').click();
      const outcome = await until("upload to finish or fail", async () => {
        if ((await alice.locator('[data-testid="chat-error"]').count()) > 0) {
          return `error: ${await alice.locator('[data-testid="chat-error"]').innerText()}`;
        }
        if ((await alice.locator('[data-testid="attachment-preview"]').count()) === 0) return "sent";
        return false;
      }, 60_000);
      if (outcome !== "sent") {
        summary.upload = outcome;
        if (UPLOAD === "required") throw new Error(`upload failed: ${outcome}`);
        log(`upload did not work (${outcome}); UPLOAD=${UPLOAD}, continuing`);
        return;
      }
      for (const [page, who] of [[alice, NAME_A], [bob, NAME_B]]) {
        await until(`${who} to see the image`, async () =>
          page.locator('[data-testid="message-image"]').evaluateAll((imgs) =>
            imgs.some((i) => i.complete && i.naturalWidth > 0),
          ),
        );
      }
      await shot(bob, "09-bob-sees-image");
      summary.upload = "ok";
    });
  }

  if (CHAT) {
    await shot(alice, "10-alice-final");
    await shot(bob, "11-bob-final");
  }
  summary.seconds = (Date.now() - t0) / 1000;
  console.log(`E2E OK ${JSON.stringify(summary)}`);
} catch (err) {
  exitCode = 1;
  console.log(`E2E FAILED: ${err?.stack ?? err}`);
  await alice.screenshot({ path: join(FAILURES, "failure-alice.png") }).catch(() => undefined);
  await bob.screenshot({ path: join(FAILURES, "failure-bob.png") }).catch(() => undefined);
} finally {
  await browser.close();
  stdinLines?.return?.();
}
process.exit(exitCode);
