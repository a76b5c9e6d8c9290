// After the server restarts, an open page reconnects by itself and shows the right counts.
import { imageUrl, uniqueTitle } from './fixtures/data';
import { GalleryPage } from './fixtures/gallery-page';
import { createOwnProduct, killOwnServers, ownBase, ownDataDir, ownVisitor, startOwnServer, stopOwnServer } from './fixtures/own-server';
import { expect, test } from './fixtures/test';

test.afterEach(killOwnServers);

test.describe('a server restart', () => {
  // While the server is down the browser reports the refused connections itself.
  // An array option is given as [value, options], or Playwright takes its first item for the value.
  test.use({ allowedConsoleErrors: [[/WebSocket connection to .* failed/, /Failed to load resource/], { option: true }] });

  test('the page reconnects and shows the right counts', async ({ page }) => {
    const base = ownBase();
    const dataDir = ownDataDir();
    let server = await startOwnServer(dataDir);
    const title = uniqueTitle('Tundra');
    const id = await createOwnProduct(title, imageUrl(base));

    const gallery = new GalleryPage(page);
    await expect(async () => {
      await gallery.page.goto(`${base}/`);
      await expect(gallery.card(title)).toBeVisible({ timeout: 500 });
    }).toPass();
    const status = page.getByRole('status');
    await expect(status).toHaveText('live');

    await stopOwnServer(server);
    await expect(status).toHaveText('reconnecting…');
    server = await startOwnServer(dataDir);
    // Someone likes the picture while this page is still away.
    const cookie = await ownVisitor();
    const liked = await fetch(`${base}/api/products/${id}/like`, { method: 'POST', headers: { cookie } });
    expect(liked.status).toBe(200);

    await expect(status).toHaveText('live', { timeout: 15_000 });
    // The page refetches within 3 s of reconnecting (spread, so pages do not come all at once).
    await expect(gallery.likeCount(title)).toHaveText('1');
    await stopOwnServer(server);
  });
});
