// Issue 15 in the browser, run by tests/clients/test_browser_backend.py against a real cluster.
// Env: WEB_URL, TOKEN_A (Alice, the owner), GROUP_ID, USER_E (Erin: never connected, named by
// the app's directory), USER_M (a plain member), SCREENSHOT_DIR, [CHROMIUM].
//
// 1. Alice's member list names Erin although Erin never signed in (the app synced her).
// 2. The test's Python side renames Erin and the group through the backend API when this
//    script prints READY: Alice sees both, live, without a reload.
// 3. Alice (owner) mutes the member from the roster ("mute"); the Python side checks the mute.
// Last line "E2E OK {json}" means every step passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { env, launchChromium, scenario } from "./harness.mjs";

const WEB_URL = env("WEB_URL").replace(/\/+$/, "");
const TOKEN_A = env("TOKEN_A");
const GROUP_ID = env("GROUP_ID");
const USER_E = env("USER_E");
const USER_M = env("USER_M");
const SHOTS = env("SCREENSHOT_DIR");
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const STEP_TIMEOUT = Number(env("STEP_TIMEOUT_MS", "20000"));
mkdirSync(SHOTS, { recursive: true });
const { until } = scenario(STEP_TIMEOUT);

const browser = await launchChromium(CHROMIUM);
let exitCode = 0;
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.on("dialog", (d) => void d.accept());  // the "Mute ...?" confirmation
  await page.goto(`${WEB_URL}/?token=${TOKEN_A}#group=${GROUP_ID}`);
  await page.locator('[data-testid="composer"]').waitFor({ timeout: STEP_TIMEOUT });
  const erin = page.locator(`[data-testid="member"][data-user-id="${USER_E}"] [data-testid="member-name"]`);
  await until("Erin's synced name in the roster", async () => (await erin.innerText()).trim() === "Erin Synced");

  console.log("READY");  // the Python side renames Erin and the group now
  await until("Erin's new name, live", async () => (await erin.innerText()).trim() === "Erin Renamed");
  await until("the group's new name, live", async () =>
    (await page.locator('[data-testid="group-name"]').innerText()).trim() === "Renamed by the app");
  await until("the group list's new name, live", async () =>
    (await page.locator(".chat-groups__name").allInnerTexts()).some((t) => t.trim() === "Renamed by the app"));

  const member = page.locator(`[data-testid="member"][data-user-id="${USER_M}"]`);
  await member.locator('[data-testid="mute"]').click();
  // Alice cannot moderate herself: no buttons on her own entry.
  const own = page.locator('[data-testid="member"]', { has: page.locator('[data-testid="mute"]') });
  if ((await own.count()) !== 2) throw new Error(`expected mute buttons on the 2 others, got ${await own.count()}`);
  await page.screenshot({ path: join(SHOTS, "20-backend-directory-and-moderation.png") });
  console.log("MUTED");
  console.log(`E2E OK ${JSON.stringify({ ok: true })}`);
} catch (err) {
  console.log(`E2E FAILED ${err && err.stack ? err.stack : err}`);
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
