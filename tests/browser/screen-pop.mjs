// The screen pop as an agent sees it: a page on VICIdial's origin (the Script tab) frames
// vicibridge's pop; the same page on another origin must not be able to frame it (CSP
// frame-ancestors). Input: {"allowed": url, "other": url, "screenshot": path, "width": px}.
// Prints {"text", "images", "dialogs", "other_text", "other_frame_url", "other_console"}.
import { launch, input, finish } from './chromium.mjs';

const args = input();
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const result = {};

  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  await page.goto(args.allowed, { waitUntil: 'load' });
  const pop = page.frameLocator('#pop');
  await pop.locator('body').waitFor({ timeout: 10000 });
  result.text = await pop.locator('body').innerText();
  // A CRM value must stay text: no element was made from it, no script ran.
  const frame = page.frames().find((f) => f.url().includes('/vicidial/screen-pop'));
  result.images = frame ? await frame.evaluate(() => document.images.length) : -1;
  result.dialogs = dialogs;
  await page.locator('#pop').screenshot({ path: args.screenshot });

  const other = await context.newPage();
  const console = [];
  other.on('console', (m) => console.push(m.text()));
  await other.goto(args.other, { waitUntil: 'load' });
  // Give the refused frame time to settle on Chromium's error page.
  await other.waitForTimeout(500);
  const refused = other.frames().find((f) => f !== other.mainFrame());
  result.other_frame_url = refused ? refused.url() : '';
  result.other_text = '';
  if (refused) {
    try {
      result.other_text = await refused.evaluate(() => document.body ? document.body.innerText : '');
    } catch (e) {
      result.other_text = '';
    }
  }
  result.other_console = console;
  finish(result);
} finally {
  await browser.close();
}
