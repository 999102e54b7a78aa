// Shared by the page checks in this folder: Debian's Chromium, headless, with the flags this
// sandbox needs (no background networking: the machine has no internet). Each check is a script
// `node <check>.mjs '<json input>'` that prints one JSON object (its findings) on stdout; the
// Rust tests in tests/tests/ start it through `vicibridge_tests::browser::run`.
import { chromium } from 'playwright-core';

/** `extraArgs`: more Chromium flags for one check. */
export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.VICIBRIDGE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extraArgs,
    ],
  });
}

/** The check's input (argv[2], JSON) and a way to print its result. */
export function input() {
  return JSON.parse(process.argv[2] ?? '{}');
}

export function finish(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}
