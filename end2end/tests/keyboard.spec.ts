// Keyboard only: a visitor reaches every like button with Tab and presses it with Enter or Space;
// an administrator adds, edits and deletes a product without the mouse.
import { imageUrl, uniqueTitle } from './fixtures/data';
import { GalleryPage } from './fixtures/gallery-page';
import { gotoHydrated } from './fixtures/hydration';
import { createOwnProduct, killOwnServers, ownBase, ownDataDir, ownToken, startOwnServer } from './fixtures/own-server';
import { expect, test } from './fixtures/test';

test.afterEach(killOwnServers);

test('Tab reaches every like button, and Enter and Space press it', async ({ page }) => {
  // A gallery of this test's own: every button on it is one this test made.
  await startOwnServer(ownDataDir());
  const titles = ['Dune', 'Fjord', 'Glacier'];
  for (const title of titles) await createOwnProduct(title, imageUrl(ownBase()));
  const gallery = new GalleryPage(page);
  await expect(async () => {
    await gotoHydrated(page, `${ownBase()}/`);
    await expect(gallery.cards).toHaveCount(titles.length, { timeout: 1_000 });
  }).toPass();

  // Tab from the top of the page until every like button has had the focus.
  const reached = new Set<string>();
  for (let presses = 0; presses < 40 && reached.size < titles.length; presses++) {
    await page.keyboard.press('Tab');
    const label = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '');
    if (label.startsWith('Like ')) reached.add(label.slice('Like '.length));
  }
  expect([...reached].sort()).toEqual([...titles].sort());

  // The focused button is pressed by Enter, then by Space; the focus ring shows.
  const button = gallery.likeButton('Fjord');
  await button.focus();
  const ring = await button.evaluate((element) => getComputedStyle(element).outlineStyle);
  expect(ring).not.toBe('none');
  await page.keyboard.press('Enter');
  await expect(button).toHaveAttribute('aria-pressed', 'true');
  await expect(gallery.likeCount('Fjord')).toHaveText('1');
  await page.keyboard.press('Space');
  await expect(button).toHaveAttribute('aria-pressed', 'false');
  await expect(gallery.likeCount('Fjord')).toHaveText('0');
});

test('an administrator adds, edits and deletes a product with the keyboard only', async ({ admin, page }) => {
  // A server of this test's own: a short table, the same number of Tabs on every run.
  await startOwnServer(ownDataDir());
  await gotoHydrated(page, `${ownBase()}/admin`);
  await admin.token.focus();
  await page.keyboard.type(ownToken);
  await page.keyboard.press('Enter');
  await expect(admin.signedIn).toBeVisible();

  // Add: type in the fields, Tab between them, Enter submits.
  const title = uniqueTitle('Keyed');
  await admin.createForm.getByLabel('Title').focus();
  await page.keyboard.type(title);
  await page.keyboard.press('Tab');
  await page.keyboard.type(imageUrl(ownBase()));
  await page.keyboard.press('Enter');
  await expect(admin.row(title)).toBeVisible();

  // Edit: Tab to the row's Edit link, Enter follows it, the new title is typed and saved.
  const edit = page.getByRole('link', { name: `Edit ${title}` });
  await tabTo(page, edit);
  await page.keyboard.press('Enter');
  const form = page.getByRole('form', { name: `Edit ${title}` });
  const renamed = `${title} renamed`;
  await form.getByLabel('Title').focus();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type(renamed);
  await page.keyboard.press('Enter');
  await expect(admin.row(renamed)).toBeVisible();

  // Delete: Tab to Delete, Enter asks for confirmation, Tab to the confirming button, Space.
  await tabTo(page, page.getByRole('link', { name: `Delete ${renamed}` }));
  await page.keyboard.press('Enter');
  const confirm = page.getByRole('form', { name: `Delete ${renamed}` }).getByRole('button', { name: 'Delete' });
  await tabTo(page, confirm);
  const answered = page.waitForResponse((response) => new URL(response.url()).pathname === '/api/delete_product');
  await page.keyboard.press('Space');
  await answered;
  await expect(admin.row(renamed)).toHaveCount(0);
});

/** Presses Tab until `target` has the focus (at most 60 times). */
async function tabTo(page: import('@playwright/test').Page, target: import('@playwright/test').Locator): Promise<void> {
  for (let presses = 0; presses < 60; presses++) {
    if (await target.evaluate((element) => element === document.activeElement).catch(() => false)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error('Tab never reached the element');
}
