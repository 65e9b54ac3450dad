// The browser demos (wskit/examples/show_time.rs, counter.rs, chat.rs) in a real headless
// Chromium, driven by playwright-core. Run by wskit/tests/browser.rs, which builds and starts
// the example servers, restarts chat between the two modes, and sets the variables below.
//
//   node demos.test.mjs demos          show_time, counter (two pages), chat (two pages)
//   node demos.test.mjs chat-history   a new chat page, after a server restart, gets the history
//   node demos.test.mjs cluster        the counter of examples/cluster/run.sh through nginx: two
//                                      pages whose WebSockets are on two nodes
//
// Environment:
//   WSKIT_SHOW_TIME_URL, WSKIT_COUNTER_URL, WSKIT_CHAT_URL   the pages (http://127.0.0.1:PORT/)
//   WSKIT_AXUM_APP_URL   the counter page of examples/axum_app.rs, whose /api/state is checked too
//   WSKIT_CHAT_ROOMS_URL the chat_rooms example (Basic auth: alice / wonderland)
//   WSKIT_AXUM_APP_TLS_URL  the same app with --tls (https, h2): the page and its wss: WebSocket
//                        must go over one HTTP/2 connection, the WebSocket as an extended CONNECT
//   WSKIT_CLUSTER_URL    nginx in front of the cluster's counter nodes (mode cluster)
//   WSKIT_BROWSER_OUTPUT   where the screenshots go (default: a directory under the system's temp)
//   WSKIT_BROWSER_TIMEOUT_MS   the whole run's bound (default 90000)
//   CHROMIUM               the browser (default /usr/bin/chromium: Debian's package; playwright's
//                          own browser download is not used)
//
// Exits 0 when every check passed, 1 with a "FAIL ..." line otherwise (and failure-*.png
// screenshots of the pages that were open).

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const MODES = ['demos', 'chat-history', 'cluster'];
const mode = process.argv[2] ?? 'demos';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const output = process.env.WSKIT_BROWSER_OUTPUT || join(tmpdir(), 'wskit-browser-output');
const totalTimeout = Number(process.env.WSKIT_BROWSER_TIMEOUT_MS || 90_000);
/** The longest any one wait may take (the show_time server sends every 1 to 3 s). */
const WAIT = 10_000;

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  // axum_app --tls makes its own certificate for localhost.
  '--ignore-certificate-errors',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ===== Running =====

let context = null;
let userDataDir = null;
let step = 'start';
/** Every open page, with its name, for failure screenshots. */
const pages = new Map();
/** Uncaught exceptions and console errors of the pages. */
const pageErrors = [];

function log(message) {
  console.log(`[${(performance.now() / 1000).toFixed(1)}s] ${message}`);
}

function url(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the URL of the demo's page)`);
  return value;
}

async function cleanup() {
  const closing = context?.close().catch(() => {});
  context = null;
  // Closing waits for the browser; do not hang on a stuck one.
  await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

let failed = false;

async function fail(message) {
  if (failed) return; // the watchdog's, then main's
  failed = true;
  console.error(`FAIL [${mode}] ${step}: ${message}`);
  for (const [name, page] of pages) {
    const path = join(output, `failure-${name}.png`);
    await page
      .screenshot({ path, timeout: 3_000 })
      .then(() => console.error(`  screenshot of page ${name}: ${path}`))
      .catch(() => {});
  }
  await cleanup();
  process.exit(1);
}

/** Poll `probe` (which returns `{ ok, seen }`) until ok, for at most `timeout` ms. */
async function until(what, probe, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let seen;
  for (;;) {
    const result = await probe();
    seen = result.seen;
    if (result.ok) return seen;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last seen: ${JSON.stringify(seen)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Open `address` in a new page named `name`; `before(page)` runs before it loads. */
async function openPage(name, address, before = async () => {}) {
  const page = await context.newPage();
  pages.set(name, page);
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (error) => pageErrors.push(`${name}: uncaught ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Chromium asks for /favicon.ico, which the demos answer with 404 on purpose.
    if (new URL(message.location().url || address).pathname === '/favicon.ico') return;
    pageErrors.push(`${name}: console error: ${message.text()} (${message.location().url})`);
  });
  await before(page);
  const response = await page.goto(address, { timeout: WAIT });
  assert.equal(response?.status(), 200, `GET ${address}`);
  return page;
}

async function closePage(name) {
  await pages.get(name).close();
  pages.delete(name);
}

async function screenshot(name, file) {
  const path = join(output, file);
  await pages.get(name).screenshot({ path });
  log(`  screenshot ${path}`);
}

function assertNoPageErrors() {
  assert.deepEqual(pageErrors, [], 'errors in the pages');
}

// ===== show_time =====

const UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

async function showTime() {
  step = 'show_time';
  const page = await openPage('show_time', url('WSKIT_SHOW_TIME_URL'));
  const times = await until('two different UTC times on the show_time page', async () => {
    const seen = await page.$$eval('ul li', (items) => items.map((item) => item.textContent));
    return { ok: new Set(seen).size >= 2, seen };
  });
  for (const time of times) {
    assert.match(time, UTC, 'a UTC time like 2026-11-22T01:23:45.678Z');
    const skew = Math.abs(Date.parse(time) - Date.now());
    assert.ok(skew < 60_000, `${time} is not now (${skew} ms off)`);
  }
  for (let i = 1; i < times.length; i++) {
    assert.ok(Date.parse(times[i]) > Date.parse(times[i - 1]), `times in order: ${times}`);
  }
  await screenshot('show_time', 'show_time.png');
  await closePage('show_time');
  assertNoPageErrors();
  log(`ok show_time: ${times.join(', ')}`);
}

// ===== counter =====

async function counterState(page) {
  return page.evaluate(() => ({
    value: document.querySelector('.value').textContent,
    state: document.querySelector('.state').textContent,
  }));
}

/** Wait until every page in `names` shows `value` and `users` online. */
async function expectCounter(names, value, users) {
  const expected = { value: String(value), state: `${users} user${users === 1 ? '' : 's'} online` };
  for (const name of names) {
    await until(`counter page ${name} to show ${JSON.stringify(expected)}`, async () => {
      const seen = await counterState(pages.get(name));
      return { ok: seen.value === expected.value && seen.state === expected.state, seen };
    });
  }
}

/** Click the plus or minus button of counter page `name`, as a person would: tab, then button.
 * (Headless Chromium runs animation frames only in the tab in front, and playwright's click
 * waits for one: in a tab behind, each click would take 1 to 2 s.) */
async function click(name, button) {
  const page = pages.get(name);
  await page.bringToFront();
  await page.click(`.${button}`);
}

/** A JSON resource of the app (through playwright, which takes the app's own certificate). */
async function getJson(address, path) {
  const response = await context.request.get(new URL(path, address).href);
  assert.equal(response.status(), 200, `GET ${path}`);
  return response.json();
}

/** The `counter` demo, or (`api`: true) the same page served by `axum_app`, whose
 * `GET /api/state` must say what the pages show; with `h2`, the pages must be served over
 * HTTP/2 and their WebSockets opened on it with RFC 8441's extended CONNECT. */
async function counter(variable = 'WSKIT_COUNTER_URL', label = 'counter', api = false, h2 = false) {
  step = label;
  const address = url(variable);
  const expectState = async (value, users) => {
    if (!api) return;
    await until(`${label}: /api/state to say value ${value}, ${users} users`, async () => {
      const seen = await getJson(address, 'api/state');
      return { ok: seen.value === value && seen.users === users, seen };
    });
  };
  await expectState(0, 0);
  await openPage('A', address);
  await expectCounter(['A'], 0, 1);
  await openPage('B', address);
  await expectCounter(['A', 'B'], 0, 2);
  await expectState(0, 2);
  if (h2) {
    step = `${label}: the pages and their WebSockets over HTTP/2`;
    for (const name of ['A', 'B']) {
      const protocol = await pages
        .get(name)
        .evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
      assert.equal(protocol, 'h2', `page ${name} loaded over ${protocol}`);
    }
    const connections = await getJson(address, 'api/connections');
    assert.equal(connections.length, 2, JSON.stringify(connections));
    for (const seen of connections) {
      assert.deepEqual(
        [seen.http, seen.method, seen.protocol],
        ['HTTP/2', 'CONNECT', 'websocket'],
        `the server saw ${JSON.stringify(seen)}`,
      );
    }
    // One browser, one HTTP/2 connection to the origin: both WebSockets are streams of it.
    assert.equal(new Set(connections.map((c) => c.peer)).size, 1, JSON.stringify(connections));
  }

  // One click at a time: both pages follow each one.
  let value = 0;
  for (const [name, button] of [
    ['A', 'plus'],
    ['B', 'plus'],
    ['A', 'minus'],
    ['B', 'plus'],
    ['B', 'plus'],
  ]) {
    step = `${label}: click ${button} in page ${name}`;
    await click(name, button);
    value += button === 'plus' ? 1 : -1;
    await expectCounter(['A', 'B'], value, 2);
  }
  // A burst from both pages, without waiting in between: both end on the same value.
  step = `${label}: a burst of clicks in both pages`;
  const burst = [
    ['A', 'plus'],
    ['B', 'minus'],
    ['A', 'plus'],
    ['A', 'plus'],
    ['B', 'plus'],
    ['B', 'minus'],
  ];
  for (const [name, button] of burst) {
    await click(name, button);
    value += button === 'plus' ? 1 : -1;
  }
  await expectCounter(['A', 'B'], value, 2);
  await expectState(value, 2);
  await screenshot('A', `${label}-a.png`);
  await screenshot('B', `${label}-b.png`);

  step = `${label}: page B closed`;
  await closePage('B');
  await expectCounter(['A'], value, 1);
  await expectState(value, 1);
  await closePage('A');
  assertNoPageErrors();
  log(`ok ${label}: both pages showed ${value} and 2 users online, then 1 user`);
}

// ===== chat =====

const HELLO = 'Hello Bob, from Chromium!';
const REPLY = 'Grüße, Alice — ça va ?';
/** Everything said in the demos mode, as the log keeps it. */
const HISTORY = [
  '*** Alice joined',
  '*** Bob joined',
  `Alice: ${HELLO}`,
  `Bob: ${REPLY}`,
  '*** Bob left',
  '*** Alice left',
];

async function chatLines(name) {
  return pages.get(name).$$eval('#log li', (items) => items.map((item) => item.textContent));
}

/** Wait until the chat page `name` shows `line`. */
async function expectLine(name, line) {
  return until(`chat page ${name} to show ${JSON.stringify(line)}`, async () => {
    const seen = await chatLines(name);
    return { ok: seen.includes(line), seen };
  });
}

async function joinChat(name, address, person) {
  const page = await openPage(name, address);
  await page.fill('#name', person);
  await page.click('#join input[type=submit]');
  await page.locator('#message').waitFor({ state: 'visible' });
  assert.ok(await page.locator('#join').isHidden(), 'the join form is hidden once joined');
  await expectLine(name, `*** ${person} joined`);
  return page;
}

async function say(name, text) {
  const page = pages.get(name);
  await page.bringToFront();
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
  assert.equal(await page.inputValue('#message'), '', 'the message box is emptied');
}

async function chat() {
  step = 'chat';
  const address = url('WSKIT_CHAT_URL');
  await joinChat('Alice', address, 'Alice');
  await joinChat('Bob', address, 'Bob');
  await expectLine('Alice', '*** Bob joined');
  assert.deepEqual(await chatLines('Bob'), ['*** Alice joined', '*** Bob joined'], "Bob's page");

  step = 'chat: Alice says hello';
  await say('Alice', HELLO);
  await expectLine('Bob', `Alice: ${HELLO}`);
  await expectLine('Alice', `Alice: ${HELLO}`);
  step = 'chat: Bob replies';
  await say('Bob', REPLY);
  await expectLine('Alice', `Bob: ${REPLY}`);
  await expectLine('Bob', `Bob: ${REPLY}`);
  assert.deepEqual(await chatLines('Alice'), HISTORY.slice(0, 4), "Alice's page");
  assert.deepEqual(await chatLines('Bob'), HISTORY.slice(0, 4), "Bob's page");
  await screenshot('Alice', 'chat.png');

  step = 'chat: Bob leaves';
  await closePage('Bob');
  await expectLine('Alice', '*** Bob left');
  await closePage('Alice');
  assertNoPageErrors();
  log('ok chat: a message typed in one page appeared in both');
}

/** `chat_rooms`: rooms at /rooms/{name} behind Basic auth, the page in the same realm. */
async function chatRooms() {
  step = 'chat-rooms';
  const address = url('WSKIT_CHAT_ROOMS_URL');
  // What a person types into the browser's prompt for the page: the browser then sends the
  // same credentials with the page's WebSocket handshakes.
  await context.setHTTPCredentials({ username: 'alice', password: 'wonderland' });
  for (const [name, room] of [['R1', 'lobby'], ['R2', 'lobby'], ['R3', 'kitchen']]) {
    const page = await openPage(name, address);
    await page.fill('#room', room);
    await page.click('#join input[type=submit]');
    await page.locator('#message').waitFor({ state: 'visible' });
    await expectLine(name, `*** alice joined ${room}`);
  }
  step = 'chat-rooms: a message in the lobby';
  await say('R1', 'Hello lobby!');
  await expectLine('R1', 'alice: Hello lobby!');
  await expectLine('R2', 'alice: Hello lobby!');
  step = 'chat-rooms: a message in the kitchen';
  await say('R3', 'Hello kitchen!');
  await expectLine('R3', 'alice: Hello kitchen!');
  await expectLine('R2', '*** alice joined lobby');
  // The kitchen's line reached the kitchen only, and the lobby's the lobby only.
  for (const name of ['R1', 'R2']) {
    assert.ok(!(await chatLines(name)).includes('alice: Hello kitchen!'), `page ${name}`);
  }
  assert.ok(!(await chatLines('R3')).includes('alice: Hello lobby!'), 'page R3');
  await screenshot('R1', 'chat-rooms.png');
  for (const name of ['R1', 'R2', 'R3']) await closePage(name);

  await context.setHTTPCredentials(null);

  // A browser of its own (this one keeps alice's good credentials in its cache).
  step = 'chat-rooms: a wrong password';
  const otherDir = await mkdtemp(join(tmpdir(), 'wskit-chromium-'));
  const other = await chromium.launchPersistentContext(otherDir, {
    executablePath,
    headless: true,
    args: ARGS,
    timeout: 30_000,
    httpCredentials: { username: 'alice', password: 'not-the-password' },
  });
  try {
    const page = await other.newPage();
    const response = await page.goto(address, { timeout: WAIT });
    assert.equal(response?.status(), 401, 'the page with a wrong password');
    assert.match(response.headers()['www-authenticate'] ?? '', /^Basic realm="chat rooms"/);
  } finally {
    await other.close();
    await rm(otherDir, { recursive: true, force: true });
  }
  assertNoPageErrors();
  log('ok chat-rooms: two pages in one room saw each other, the other room did not; 401 for a wrong password');
}

async function chatHistory() {
  step = 'chat-history';
  const address = url('WSKIT_CHAT_URL');
  await joinChat('Carol', address, 'Carol');
  const expected = [...HISTORY, '*** Carol joined'];
  assert.deepEqual(await chatLines('Carol'), expected, "Carol's page: the history, then her notice");
  await say('Carol', 'Anyone here?');
  await expectLine('Carol', 'Carol: Anyone here?');
  await screenshot('Carol', 'chat-after-restart.png');
  await closePage('Carol');
  assertNoPageErrors();
  log('ok chat-history: a new page after the restart got the earlier messages');
}

// ===== cluster =====

/** Open counter page `name` at `address` and say which node its WebSocket landed on: the
 * `X-Wskit-Node` header of the handshake's answer, as Chromium received it (through the
 * DevTools protocol: a page's script cannot read a 101's headers). */
async function openCounterOnNode(name, address) {
  let node = null;
  await openPage(name, address, async (page) => {
    const devtools = await context.newCDPSession(page);
    await devtools.send('Network.enable');
    devtools.on('Network.webSocketHandshakeResponseReceived', ({ response }) => {
      const header = Object.entries(response.headers).find(
        ([field]) => field.toLowerCase() === 'x-wskit-node',
      );
      node = header ? header[1] : '(no X-Wskit-Node header)';
    });
  });
  return until(`page ${name}'s WebSocket to open`, async () => ({ ok: node !== null, seen: node }));
}

/** The counter of examples/cluster/run.sh, through nginx: two pages whose WebSockets land on
 * two different nodes show the same value after every click, and 2 users online. */
async function cluster() {
  step = 'cluster: two pages through nginx';
  const address = url('WSKIT_CLUSTER_URL');
  const nodeA = await openCounterOnNode('A', address);
  let nodeB = await openCounterOnNode('B', address);
  // Round robin: a page and its WebSocket are two requests, so one more moves B to the other.
  for (let attempt = 1; nodeB === nodeA; attempt += 1) {
    assert.ok(attempt < 4, `every WebSocket of page B landed on ${nodeA}, as page A's`);
    await closePage('B');
    await fetch(new URL('healthz', address));
    nodeB = await openCounterOnNode('B', address);
  }
  log(`  page A's WebSocket on ${nodeA}, page B's on ${nodeB}`);
  await expectCounter(['A', 'B'], 0, 2);
  let value = 0;
  for (const [name, button] of [
    ['A', 'plus'],
    ['B', 'plus'],
    ['B', 'minus'],
    ['A', 'plus'],
  ]) {
    step = `cluster: click ${button} in page ${name} (on ${name === 'A' ? nodeA : nodeB})`;
    await click(name, button);
    value += button === 'plus' ? 1 : -1;
    await expectCounter(['A', 'B'], value, 2);
  }
  step = 'cluster: a burst of clicks in both pages';
  for (const [name, button] of [
    ['A', 'plus'],
    ['B', 'plus'],
    ['A', 'minus'],
    ['B', 'plus'],
    ['A', 'plus'],
  ]) {
    await click(name, button);
    value += button === 'plus' ? 1 : -1;
  }
  await expectCounter(['A', 'B'], value, 2);
  await screenshot('A', 'cluster-a.png');
  await screenshot('B', 'cluster-b.png');
  step = 'cluster: page B closed';
  await closePage('B');
  await expectCounter(['A'], value, 1);
  await closePage('A');
  assertNoPageErrors();
  log(`ok cluster: pages on ${nodeA} and ${nodeB} showed ${value} and 2 users online, then 1 user`);
}

// ===== Main =====

async function main() {
  if (!MODES.includes(mode)) throw new Error(`unknown mode ${mode}: one of ${MODES.join(', ')}`);
  if (mode === 'demos') {
    [
      'WSKIT_SHOW_TIME_URL',
      'WSKIT_COUNTER_URL',
      'WSKIT_CHAT_URL',
      'WSKIT_AXUM_APP_URL',
      'WSKIT_AXUM_APP_TLS_URL',
      'WSKIT_CHAT_ROOMS_URL',
    ].forEach(url);
  }
  else if (mode === 'cluster') url('WSKIT_CLUSTER_URL');
  else url('WSKIT_CHAT_URL');
  step = 'launch chromium';
  await mkdir(output, { recursive: true });
  userDataDir = await mkdtemp(join(tmpdir(), 'wskit-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    ignoreHTTPSErrors: true,
    args: ARGS,
    timeout: 30_000,
  });
  log(`chromium ${context.browser()?.version() ?? ''} (${executablePath})`);
  if (mode === 'demos') {
    await showTime();
    await counter();
    await counter('WSKIT_AXUM_APP_URL', 'axum-app', true);
    await counter('WSKIT_AXUM_APP_TLS_URL', 'axum-app-h2', true, true);
    await chat();
    await chatRooms();
  } else if (mode === 'cluster') {
    await cluster();
  } else {
    await chatHistory();
  }
  step = 'close chromium';
  await cleanup();
  log(`all ${mode} checks passed; screenshots in ${output}`);
}

const watchdog = setTimeout(
  () => fail(`the whole run took more than ${totalTimeout} ms`),
  totalTimeout,
);
try {
  await main();
  clearTimeout(watchdog);
} catch (error) {
  clearTimeout(watchdog);
  await fail(error?.stack ?? String(error));
}
