// After the server restarts, an open page reconnects by itself and shows the right counts.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { imageUrl, uniqueTitle } from './fixtures/data';
import { GalleryPage } from './fixtures/gallery-page';
import { expect, test } from './fixtures/test';

const root = resolve(__dirname, '..', '..');
const firstPort = Number(process.env.E2E_RESTART_PORT ?? 3101);
const token = 'restart-test-token';

/** This worker's own port: tests of this file (and their repeats) run on several workers at once. */
function port(): number {
  return firstPort + test.info().parallelIndex;
}

/** Starts a server of our own (not the shared one), on data that survives its restarts. */
async function startServer(dataDir: string): Promise<ChildProcess> {
  const base = `http://127.0.0.1:${port()}`;
  const server = spawn(process.env.E2E_SERVER_BIN ?? 'target/debug/server', [], {
    cwd: root,
    stdio: 'ignore',
    env: {
      ...process.env,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port()}`,
      LEPTOS_SITE_ROOT: 'target/site',
      CATALOG_DATABASE_URL: `sqlite://${dataDir}/catalog.db`,
      WEB_DATABASE_URL: `sqlite://${dataDir}/web.db`,
      ADMIN_TOKEN: token,
      AMQP_URL: '',
    },
  });
  await expect(async () => {
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
  }).toPass({ timeout: 20_000 });
  return server;
}

async function stopServer(server: ChildProcess): Promise<void> {
  const exited = new Promise((done) => server.once('exit', done));
  server.kill('SIGTERM');
  await exited;
}

/** The servers this file started, stopped after each test whatever happened. */
const servers: Array<() => ChildProcess> = [];
test.afterEach(() => {
  for (const server of servers.splice(0)) {
    const process = server();
    if (process.exitCode === null && process.signalCode === null) process.kill('SIGKILL');
  }
});

test.describe('a server restart', () => {
  // While the server is down the browser reports the refused connections itself.
  // An array option is given as [value, options], or Playwright takes its first item for the value.
  test.use({ allowedConsoleErrors: [[/WebSocket connection to .* failed/, /Failed to load resource/], { option: true }] });

  test('the page reconnects and shows the right counts', async ({ page }) => {
    const base = `http://127.0.0.1:${port()}`;
    const dataDir = mkdtempSync(join(root, 'target', 'e2e', 'restart-'));
    let server = await startServer(dataDir);
    servers.push(() => server);
    const title = uniqueTitle('Tundra');
    const created = await fetch(`${base}/api/admin/products`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title, image: imageUrl(base) }),
    });
    expect(created.status).toBe(201);
    const { id } = await created.json();

    const gallery = new GalleryPage(page);
    await expect(async () => {
      await gallery.page.goto(`${base}/`);
      await expect(gallery.card(title)).toBeVisible({ timeout: 500 });
    }).toPass();
    const status = page.getByRole('status');
    await expect(status).toHaveText('live');

    await stopServer(server);
    await expect(status).toHaveText('reconnecting…');
    server = await startServer(dataDir);
    // Someone likes the picture while this page is still away.
    const visitor = await fetch(`${base}/`);
    const cookie = (visitor.headers.get('set-cookie') ?? '').split(';')[0];
    const liked = await fetch(`${base}/api/products/${id}/like`, { method: 'POST', headers: { cookie } });
    expect(liked.status).toBe(200);

    await expect(status).toHaveText('live', { timeout: 15_000 });
    await expect(gallery.likeCount(title)).toHaveText('1');
    await stopServer(server);
  });
});
