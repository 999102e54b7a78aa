// serve's /status page as an operator's browser shows it: the charts are drawn (an SVG per chart,
// a vertex per minute, a dot per busy minute, coloured by the page's own stylesheet, which the
// CSP allows by hash), the page runs without a console error or a CSP violation.
// Input: {"url", "screenshot", "width"}. Prints {"charts", "text", "console", "violations", "errors"}.
import { launch, input, finish } from './chromium.mjs';

const args = input();
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: args.width ?? 1000, height: 900 } });
  // Injected by the browser itself, not by the page: the page's CSP does not apply to it.
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  const consoleMessages = [];
  const errors = [];
  page.on('console', (m) => consoleMessages.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(String(e)));
  const response = await page.goto(args.url, { waitUntil: 'load' });
  const result = { status: response.status() };
  result.charts = await page.evaluate(() =>
    [...document.querySelectorAll('figure.chart')].map((fig) => {
      const svg = fig.querySelector('svg');
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      const lines = svg ? [...svg.querySelectorAll('polyline')] : [];
      return {
        caption: fig.querySelector('figcaption')?.innerText ?? '',
        svg_width: box.width,
        svg_height: box.height,
        lines: lines.map((l) => ({
          vertices: l.points.numberOfItems,
          stroke: getComputedStyle(l).stroke,
          fill: getComputedStyle(l).fill,
        })),
        points: [...(svg ? svg.querySelectorAll('circle') : [])].map((c) => ({
          count: Number(c.dataset.count),
          fill: getComputedStyle(c).fill,
          radius: c.r.baseVal.value,
        })),
      };
    }),
  );
  result.text = await page.locator('body').innerText();
  result.violations = await page.evaluate(() => window.__violations);
  result.console = consoleMessages;
  result.errors = errors;
  await page.screenshot({ path: args.screenshot, fullPage: true });
  finish(result);
} finally {
  await browser.close();
}
