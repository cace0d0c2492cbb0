// What a browser scenario needs besides its steps: env lookup, timed steps, polling, Chromium.
import { chromium } from "playwright-core";

export function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`missing env ${name}`);
  return v;
}

/** `step(name, fn)` runs and times a step into `summary`; `until(what, fn)` polls fn. */
export function scenario(stepTimeout = Number(env("STEP_TIMEOUT_MS", "20000"))) {
  const summary = { steps: [] };
  const t0 = Date.now();
  const log = (msg) => console.log(`[e2e +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
  async function step(name, fn) {
    const start = Date.now();
    log(`STEP ${name}`);
    await fn();
    summary.steps.push({ name, ms: Date.now() - start });
  }
  async function until(what, fn, timeout = stepTimeout) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        last = await fn();
        if (last) return last;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { summary, log, step, until, stepTimeout, t0 };
}

export function launchChromium(executablePath = env("CHROMIUM", "/usr/bin/chromium")) {
  return chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
