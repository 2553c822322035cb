// The operator console in a real browser: Debian's Chromium driven by playwright-core, against the
// console a Rust test started over real RabbitMQ and PostgreSQL (tests/tests/console_browser.rs sets
// the scene and checks the broker and the database after). Prints what it saw as one JSON line; any
// failed expectation exits non-zero with the reason.
//
// Environment: CONSOLE_URL, CONSOLE_TOKEN, REPLAY_REQUEST and DISCARD_REQUEST (OTP sends that died),
// REPLAY_LETTER and DISCARD_LETTER (their dead_letters ids), DOCUMENT_ID (a document whose client
// webhook failed), SCREENSHOTS (a folder), CHROMIUM (default /usr/bin/chromium).

import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('CONSOLE_URL');
const token = env('CONSOLE_TOKEN');
const replayRequest = env('REPLAY_REQUEST');
const discardRequest = env('DISCARD_REQUEST');
const replayLetter = env('REPLAY_LETTER');
const discardLetter = env('DISCARD_LETTER');
const documentId = env('DOCUMENT_ID');
const shots = env('SCREENSHOTS');
mkdirSync(shots, { recursive: true });

const seen = {};
const expect = (ok, what) => {
  if (!ok) throw new Error(`expected: ${what}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Chromium's own calls home are refused by a closed network, many at a time: turned off.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/** A page of a context that gives `password` when the console asks (HTTP Basic, user `ana`). */
async function pageWith(password) {
  const context = await browser.newContext({
    httpCredentials: password ? { username: 'ana', password } : undefined,
    viewport: { width: 1400, height: 900 },
  });
  return context.newPage();
}

/** Goes to `path` and answers the response. */
async function visit(page, path) {
  return page.goto(new URL(path, base).toString());
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  (seen.screenshots ??= []).push(`${name}.png`);
}

/** Reloads `path` until `test(text of selector)` holds, up to `seconds`. */
async function until(page, path, selector, test, seconds, what) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    await visit(page, path);
    const text = (await page.locator(selector).count()) ? await page.locator(selector).innerText() : '';
    if (test(text)) return text;
    if (Date.now() > deadline) throw new Error(`expected within ${seconds}s: ${what}; last:\n${text}`);
    await page.waitForTimeout(500);
  }
}

/** The hidden fields of the first action form under `selector`. */
async function formFields(page, selector) {
  const form = page.locator(selector).first();
  return {
    action_id: await form.locator('input[name=action_id]').inputValue(),
    form_token: await form.locator('input[name=form_token]').inputValue(),
  };
}

try {
  // 1. No token, a wrong one: 401. Without credentials Chromium ends the navigation itself once the
  //    console answers 401 (it has no one to ask), so the answer is read off the response.
  const bare = await pageWith(null);
  const answers = [];
  bare.on('response', (r) => answers.push(r.status()));
  await visit(bare, '/').catch(() => {});
  seen.no_token = answers[0];
  expect(seen.no_token === 401, `401 without the token, got ${answers}`);
  const wrong = await pageWith('not-the-console-token');
  seen.wrong_token = (await visit(wrong, '/')).status();
  expect(seen.wrong_token === 401, `401 with a wrong token, got ${seen.wrong_token}`);
  await shot(wrong, 'unauthorized');

  const page = await pageWith(token);

  // 2. Search finds the send and shows its attempts.
  await visit(page, '/');
  await shot(page, 'home');
  await page.fill('#q', replayRequest);
  await page.click('button[type=submit]');
  await page.waitForSelector('#timeline');
  const attempts = await page.locator('#attempts tr').count();
  seen.failed_attempts_shown = attempts - 1;
  expect(attempts - 1 >= 3, `the failed attempts listed (${attempts - 1})`);
  const timeline = await page.locator('#timeline').innerText();
  expect(timeline.includes('attempt 1 failed') && timeline.includes('dead-lettered from otp.send'),
    `the timeline tells the attempts and the dead letter:\n${timeline}`);
  await shot(page, 'search-attempts');

  // 3. The dead letters list, filtered by queue.
  await visit(page, '/dead-letters?queue=otp.send');
  const list = await page.locator('#dead-letters').innerText();
  expect(list.includes(replayRequest) && list.includes(discardRequest), `both letters listed:\n${list}`);
  await shot(page, 'dead-letters');

  // 4. A cross-site POST is refused, even carrying a real form token: another site's page makes the
  //    logged-in browser send a discard.
  await visit(page, `/dead-letters/${discardLetter}`);
  const stolen = await formFields(page, `form[action="/dead-letters/${discardLetter}/discard"]`);
  const evil = createServer((req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<form id="f" method="post" action="${base}/dead-letters/${discardLetter}/discard">
      <input name="action_id" value="${stolen.action_id}"><input name="form_token" value="${stolen.form_token}">
      <input name="reason" value="forged"></form><script>document.getElementById('f').submit()</script>`);
  });
  await new Promise((resolve) => evil.listen(0, '127.0.0.2', resolve));
  const evilUrl = `http://127.0.0.2:${evil.address().port}/`;
  const forged = page.waitForResponse(
    (r) => r.url().endsWith(`/dead-letters/${discardLetter}/discard`) && r.status() !== 401);
  await page.goto(evilUrl);
  const forgedResponse = await forged;
  seen.cross_site_status = forgedResponse.status();
  expect(seen.cross_site_status === 403, `a cross-site POST is refused with 403, got ${seen.cross_site_status}`);
  await page.waitForLoadState();
  await shot(page, 'cross-site-refused');
  evil.close();
  await visit(page, `/dead-letters/${discardLetter}`);
  expect((await page.locator('#state').innerText()).trim() === 'open', 'the forged discard changed nothing');

  // 5. Replay from the page: the letter is marked, the send completes, and the page shows it done.
  await visit(page, `/dead-letters/${replayLetter}`);
  await shot(page, 'dead-letter');
  const replayForm = `form[action="/dead-letters/${replayLetter}/replay"]`;
  const sameForm = await formFields(page, replayForm);
  await page.locator(replayForm).locator('button').click();
  await page.waitForURL(`**/dead-letters/${replayLetter}`);
  const state = (await page.locator('#state').innerText()).trim();
  expect(state === 'replayed', `the letter is replayed, not ${state}`);
  const actions = await page.locator('#actions').innerText();
  expect(actions.includes('replayed 1 of 1'), `the action and its outcome recorded:\n${actions}`);
  await shot(page, 'dead-letter-replayed');
  // The same form sent again (a double click, a resend): answered, not carried out again.
  const again = await page.request.post(`${base}/dead-letters/${replayLetter}/replay`, {
    form: sameForm, headers: { origin: base }, maxRedirects: 0,
  });
  seen.same_form_again = again.status();
  expect(seen.same_form_again === 303, `the same form again answers 303, got ${seen.same_form_again}`);
  // A new form for the replayed letter: nothing left to replay.
  await visit(page, `/dead-letters/${discardLetter}`);
  const fresh = await formFields(page, `form[action="/dead-letters/${discardLetter}/replay"]`);
  const second = await page.request.post(`${base}/dead-letters/${replayLetter}/replay`, {
    form: fresh, headers: { origin: base }, maxRedirects: 0,
  });
  seen.second_replay = second.status();
  expect(seen.second_replay === 303, `a second replay answers 303, got ${seen.second_replay}`);
  await visit(page, `/dead-letters/${replayLetter}`);
  const after = await page.locator('#actions').innerText();
  seen.replay_actions = after.split('\n').filter((l) => l.includes('replay')).length;
  expect(after.includes('nothing done'), `the second replay did nothing:\n${after}`);
  expect(seen.replay_actions === 2, `two replays recorded (the resent form is not), got:\n${after}`);
  const work = await until(page, `/search?q=${replayRequest}`, '#work',
    (t) => t.includes('done') && t.includes('sent'), 60, 'the replayed send done and sent');
  seen.replayed_work = work.split('\n').slice(1).join(' | ');
  await shot(page, 'search-replayed-done');

  // 6. A discard asks for a reason, then records it.
  await visit(page, `/dead-letters/${discardLetter}`);
  const discardForm = page.locator(`form[action="/dead-letters/${discardLetter}/discard"]`);
  seen.reason_required = await discardForm.locator('textarea[name=reason]').evaluate((t) => t.required);
  await discardForm.locator('button').click();
  seen.empty_reason_valid = await discardForm.locator('textarea[name=reason]').evaluate((t) => t.validity.valid);
  expect(seen.reason_required && !seen.empty_reason_valid, 'an empty reason is not accepted');
  expect((await page.locator('#state').innerText()).trim() === 'open', 'nothing discarded without a reason');
  await discardForm.locator('textarea[name=reason]').fill('customer cancelled the order');
  await discardForm.locator('button').click();
  await page.waitForURL(`**/dead-letters/${discardLetter}`);
  expect((await page.locator('#state').innerText()).trim() === 'discarded', 'the letter is discarded');
  const why = await page.locator('#letter').innerText();
  expect(why.includes('customer cancelled the order'), `the reason is shown:\n${why}`);
  const discardActions = await page.locator('#actions').innerText();
  expect(discardActions.includes('ana') && discardActions.includes('customer cancelled the order'),
    `who and why recorded:\n${discardActions}`);
  await shot(page, 'dead-letter-discarded');

  // 7. A failed client webhook, redelivered from the page, reaches the endpoint.
  await visit(page, `/search?q=${documentId}`);
  const before = await page.locator('#webhooks').innerText();
  expect(before.includes('500'), `the failed attempts are shown:\n${before}`);
  await shot(page, 'document-webhook-failed');
  await visit(page, '/webhooks');
  await shot(page, 'webhooks');
  await visit(page, `/search?q=${documentId}`);
  await page.locator(`form[action="/documents/${documentId}/redeliver"] button`).click();
  await page.waitForURL(`**/search?q=${documentId}`);
  const delivered = await until(page, `/search?q=${documentId}`, '#webhooks',
    (t) => t.includes('delivered') && t.includes('200'), 30, 'the redelivered webhook delivered');
  seen.webhook_rows = delivered.split('\n').length - 1;
  await shot(page, 'document-webhook-redelivered');

  // 8. The other pages, for the record.
  await visit(page, '/queues');
  await shot(page, 'queues');
  await visit(page, '/report/otp?since=1d');
  expect(await page.locator('#states').count() === 1, 'the OTP report shows its states');
  await shot(page, 'otp-report');
  await visit(page, '/actions');
  const all = await page.locator('#actions').innerText();
  seen.actions_recorded = all.split('\n').length - 1;
  await shot(page, 'actions');
  await visit(page, `/search?q=acme`);
  await shot(page, 'search-tenant');

  console.log(JSON.stringify(seen));
  await browser.close();
} catch (e) {
  for (const context of browser.contexts()) {
    for (const [i, page] of context.pages().entries()) {
      await page.screenshot({ path: `${shots}/failed-${i}.png`, fullPage: true }).catch(() => {});
    }
  }
  console.error(`${e.stack || e}\nseen so far: ${JSON.stringify(seen)}`);
  await browser.close();
  process.exit(1);
}
