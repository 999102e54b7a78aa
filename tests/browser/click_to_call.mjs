// Click-to-call in a real browser. Input: {base, simBase, screenshots, hubspotContact}.
// - HubSpot: a host page at https://app.hubspot.test plays HubSpot's side of the calling
//   extensions protocol (SYNC until SYNC_ACK, then DIAL_NUMBER), the widget loads the real SDK
//   package (served for the configured CDN URL from node_modules, checked by SRI), the agent
//   signs in through the popup (OAuth simulator), a click dials, and the widget reports the call
//   answered and ended as the agent's VICIdial state moves.
// - Salesforce: a host page on the org's origin frames the softphone, which loads the org's
//   opencti_min.js (simulator); the host fires onClickToDial.
// - Plain /dialer?phone=…&record_id=… dials and closes itself.
// - A foreign origin framing the widget is refused by the browser (CSP frame-ancestors).
import { readFileSync } from 'node:fs';
import { launch, input, finish } from './chromium.mjs';

const { base, simBase, screenshots, hubspotContact } = input();
const SDK_URL = 'https://cdn.example.test/npm/@hubspot/calling-extensions-sdk@0.9.7/dist/main.js';
const sdk = readFileSync(new URL('./node_modules/@hubspot/calling-extensions-sdk/dist/main.js', import.meta.url));

const hubspotHost = `<!doctype html><html><body style="margin:0;background:#f5f8fa">
<div id="frame"></div><script>
  window.received = [];
  const iframe = document.createElement('iframe');
  iframe.src = ${JSON.stringify(base + '/dialer/hubspot')};
  iframe.width = 320; iframe.height = 420; iframe.style.border = '1px solid #cbd6e2';
  document.getElementById('frame').appendChild(iframe);
  const target = new URL(iframe.src).origin;
  let synced = false, n = 0;
  window.addEventListener('message', (ev) => {
    if (ev.origin !== target) return;
    window.received.push(ev.data);
    if (ev.data && ev.data.type === 'SYNC_ACK') synced = true;
  });
  (function sync() {
    if (synced) return;
    iframe.contentWindow && iframe.contentWindow.postMessage({ type: 'SYNC', portalId: 9000001, userId: 424242, ownerId: 77, hostUrl: location.origin }, target);
    setTimeout(sync, 100);
  })();
  window.dialNumber = (data) => iframe.contentWindow.postMessage({ type: 'DIAL_NUMBER', messageId: 'hubspot_' + (++n), data }, target);
</script></body></html>`;

const salesforceHost = `<!doctype html><html><body style="margin:0;background:#f3f3f3">
<iframe id="softphone" src=${JSON.stringify(base + '/dialer/salesforce')} width="320" height="420" style="border:1px solid #c9c9c9"></iframe>
<script>
  window.calls = [];
  const frame = document.getElementById('softphone');
  window.addEventListener('message', (ev) => { if (ev.source === frame.contentWindow && ev.data && ev.data.opencti) window.calls.push(ev.data.opencti); });
  window.clickToDial = (payload) => frame.contentWindow.postMessage({ event: 'onClickToDial', payload }, '*');
</script></body></html>`;

const foreignHost = `<!doctype html><html><body><iframe id="w" src=${JSON.stringify(base + '/dialer/hubspot')}></iframe></body></html>`;

async function until(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) {
      const frames = context.pages().flatMap((p) => p.frames().map((f) => f.url()));
      throw new Error('timed out: ' + what + '\nframes: ' + frames.join(' ') + '\nconsole: ' + log.join('\n'));
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The CRM hosts are played on made-up public origins framing vicibridge on 127.0.0.1: without
// this, Chromium's local network access checks refuse a public page framing a loopback one
// (a real deployment serves vicibridge on a public address).
const browser = await launch(['--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessForNavigations,PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests']);
const context = await browser.newContext({ viewport: { width: 420, height: 520 } });
await context.route(SDK_URL, (route) => route.fulfill({ body: sdk, contentType: 'text/javascript', headers: { 'access-control-allow-origin': '*' } }));
await context.route('https://app.hubspot.test/**', (route) => route.fulfill({ body: hubspotHost, contentType: 'text/html' }));
await context.route('https://evil.test/**', (route) => route.fulfill({ body: foreignHost, contentType: 'text/html' }));
await context.route(simBase + '/lightning/host', (route) => route.fulfill({ body: salesforceHost, contentType: 'text/html' }));
const result = { consoleErrors: [] };
const log = [];
context.on('page', (p) => p.on('console', (m) => log.push(p.url() + ': ' + m.text())));
context.on('weberror', (e) => log.push('weberror: ' + e.error().message));

async function widgetState(frame) {
  // A page that closes itself (the plain dialer after a dial) answers nothing.
  return frame.evaluate(() => ({ state: document.body.dataset.state, status: document.getElementById('status').textContent, detail: document.getElementById('detail').textContent })).catch(() => ({ state: 'closed' }));
}
async function signIn(page, frame, button) {
  const popup = page.waitForEvent('popup');
  await frame.getByRole('button', { name: button }).click();
  const p = await popup;
  await p.waitForEvent('close', { timeout: 15000 });
}

// --- HubSpot -------------------------------------------------------------------------------
{
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
  await page.goto('https://app.hubspot.test/contacts/51');
  const frame = await until('widget frame', () => page.frames().find((f) => f.url().startsWith(base + '/dialer/hubspot')));
  await until('SYNC_ACK', () => page.evaluate(() => window.received.some((m) => m.type === 'SYNC_ACK')));
  await until('signed-out state', async () => (await widgetState(frame)).state === 'signed-out');
  await page.locator('iframe').screenshot({ path: screenshots + '/click-to-call-hubspot-signed-out.png' });
  await signIn(page, frame, 'Sign in with HubSpot');
  await until('ready state', async () => (await widgetState(frame)).state === 'ready');
  await page.locator('iframe').screenshot({ path: screenshots + '/click-to-call-hubspot-ready.png' });
  await page.evaluate((id) => window.dialNumber({ phoneNumber: '+1 (727) 555-1212', objectId: Number(id), objectType: 'CONTACT', portalId: 9000001, ownerId: 77 }), hubspotContact);
  await until('queued state', async () => (await widgetState(frame)).state === 'queued');
  result.hubspotQueued = await widgetState(frame);
  await page.locator('iframe').screenshot({ path: screenshots + '/click-to-call-hubspot-calling.png' });
  result.outgoingCall = await until('OUTGOING_CALL_STARTED', () => page.evaluate(() => window.received.find((m) => m.type === 'OUTGOING_CALL_STARTED')));
  // The test moves the agent in the VICIdial simulator (in call, then free): the widget follows
  // through GET /agent/state and moves HubSpot's call bar along.
  const sent = (type) => () => page.evaluate((t) => window.received.find((m) => m.type === t), type);
  result.callAnswered = await until('CALL_ANSWERED', sent('CALL_ANSWERED'), 30000);
  await until('on-call state', async () => (await widgetState(frame)).state === 'on-call');
  await page.locator('iframe').screenshot({ path: screenshots + '/click-to-call-hubspot-on-call.png' });
  result.callEnded = await until('CALL_ENDED', sent('CALL_ENDED'), 30000);
  result.callCompleted = await until('CALL_COMPLETED', sent('CALL_COMPLETED'));
  await until('ready after the call', async () => (await widgetState(frame)).state === 'ready');
  await page.evaluate(() => window.dialNumber({ phoneNumber: 'not a number', objectId: 52, objectType: 'CONTACT' }));
  await until('error state', async () => (await widgetState(frame)).state === 'error');
  result.hubspotError = await widgetState(frame);
  result.hubspotErrorMessage = await until('ERROR to HubSpot', () => page.evaluate(() => window.received.find((m) => m.type === 'ERROR')));
  await page.locator('iframe').screenshot({ path: screenshots + '/click-to-call-hubspot-error.png' });
  result.hubspotMessages = await page.evaluate(() => window.received.map((m) => m.type));
  await page.close();
}

process.stderr.write('hubspot done\n');
// --- Salesforce Open CTI -------------------------------------------------------------------
{
  const page = await context.newPage();
  await page.goto(simBase + '/lightning/host');
  const frame = await until('softphone frame', () => page.frames().find((f) => f.url().startsWith(base + '/dialer/salesforce')));
  await until('enableClickToDial', () => page.evaluate(() => window.calls.includes('enableClickToDial') && window.calls.includes('onClickToDial')));
  await until('signed-out state', async () => (await widgetState(frame)).state === 'signed-out');
  await signIn(page, frame, 'Sign in with Salesforce');
  await until('ready state', async () => (await widgetState(frame)).state === 'ready');
  await page.evaluate(() => window.clickToDial({ number: '(415) 555-2671', recordId: '003xx000004TmiQAAS', recordName: 'Grace Hopper', objectType: 'Contact' }));
  await until('queued state', async () => (await widgetState(frame)).state === 'queued');
  result.salesforceQueued = await widgetState(frame);
  result.salesforceCalls = await page.evaluate(() => window.calls);
  await page.locator('iframe').screenshot({ path: screenshots + '/click-to-call-salesforce-calling.png' });
  await page.close();
}

process.stderr.write('salesforce done\n');
// --- plain /dialer link (opened by a CRM button, so it may close itself) ---------------------
// A browser the agent never signed in with: the link signs in, dials, says so and closes.
{
  const fresh = await browser.newContext({ viewport: { width: 420, height: 520 } });
  fresh.on('page', (p) => p.on('console', (m) => log.push(p.url() + ': ' + m.text())));
  const opener = await fresh.newPage();
  await opener.goto(base + '/dialer');
  const [page] = await Promise.all([
    fresh.waitForEvent('page'),
    opener.evaluate((url) => { window.open(url, '_blank', 'width=420,height=520'); }, base + '/dialer?phone=7275550000&record_id=99'),
  ]);
  await until('signed-out state', async () => (await widgetState(page.mainFrame())).state === 'signed-out');
  const closed = page.waitForEvent('close', { timeout: 20000 });
  await signIn(page, page.mainFrame(), 'Sign in with HubSpot');
  const seen = new Set();
  await until('done state', async () => {
    const s = await widgetState(page.mainFrame());
    seen.add(s.state);
    if (s.state === 'done') result.plainDone = s;
    return s.state === 'done' || s.state === 'closed';
  });
  await closed;
  result.plainStates = [...seen];
  result.plainClosed = true;
  await fresh.close();
}

// --- a foreign origin framing the widget ------------------------------------------------------
{
  const page = await context.newPage();
  const refused = [];
  page.on('console', (m) => { if (/frame-ancestors/.test(m.text())) refused.push(m.text()); });
  await page.goto('https://evil.test/');
  await new Promise((r) => setTimeout(r, 1500));
  const widget = page.frames().find((f) => f.url().startsWith(base + '/dialer/hubspot'));
  let rendered = false;
  if (widget) { try { rendered = await widget.evaluate(() => !!document.getElementById('status')); } catch (e) { rendered = false; } }
  result.foreign = { rendered, refused: refused.length > 0 };
  await page.close();
}

await browser.close();
finish(result);
