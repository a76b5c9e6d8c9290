// An administrator manages products; each change shows in the admin table and the gallery.
import type { Page } from '@playwright/test';
import { adminToken } from '../playwright.config';
import { imageUrl, uniqueTitle } from './fixtures/data';
import { GalleryPage } from './fixtures/gallery-page';
import { expect, test } from './fixtures/test';

/** The gallery is fed by events, a moment after the change: reload until it shows. */
async function expectInGallery(page: Page, title: string, present: boolean): Promise<void> {
  const gallery = new GalleryPage(page);
  await expect(async () => {
    await gallery.open();
    if (present) await expect(gallery.card(title)).toBeVisible({ timeout: 500 });
    else await expect(gallery.card(title)).toHaveCount(0, { timeout: 500 });
  }).toPass({ timeout: 10_000 });
}

test('create, see in the table and the gallery, edit, then delete a product', async ({ admin, page, baseURL }) => {
  const title = uniqueTitle('Lighthouse');
  const renamed = uniqueTitle('Beacon');
  await admin.open();
  await admin.signIn(adminToken);

  await admin.createProduct(title, imageUrl(baseURL));
  await expect(admin.row(title)).toBeVisible();
  await expect(admin.row(title).getByRole('cell').nth(2)).toHaveText('0');
  await expect(admin.createForm.getByLabel('Title')).toHaveValue('');
  await expectInGallery(page, title, true);

  await admin.open();
  await admin.editProduct(title, { title: renamed, image: imageUrl(baseURL, 'b') });
  await expect(admin.row(renamed)).toBeVisible();
  await expect(admin.row(title)).toHaveCount(0);
  await expectInGallery(page, renamed, true);

  await admin.open();
  await admin.deleteProduct(renamed);
  await expect(admin.row(renamed)).toHaveCount(0);
  await expectInGallery(page, renamed, false);
});

test.describe('a refused product', () => {
  test('a bad image URL is shown next to the field and nothing is stored', async ({ admin }) => {
    const title = uniqueTitle('Sneaky');
    await admin.open();
    await admin.signIn(adminToken);
    await admin.createProduct(title, 'javascript:alert(1)');

    const image = admin.createForm.getByLabel('Image URL');
    await expect(image).toHaveAttribute('aria-invalid', 'true');
    await expect(image).toHaveAccessibleDescription('must be an absolute http:// or https:// URL');
    await admin.page.reload();
    await expect(admin.row(title)).toHaveCount(0);
  });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('products can be created, edited and deleted with plain forms', async ({ admin, baseURL }) => {
    const title = uniqueTitle('Plain');
    const renamed = uniqueTitle('Plainer');
    await admin.openStatic();
    await admin.signIn(adminToken);

    await admin.createProduct(title, imageUrl(baseURL));
    await expect(admin.row(title)).toBeVisible();
    await admin.editProduct(title, { title: renamed });
    await expect(admin.row(renamed)).toBeVisible();
    await admin.deleteProduct(renamed);
    await expect(admin.row(renamed)).toHaveCount(0);
  });

  test('a bad image URL is explained next to the field', async ({ admin }) => {
    await admin.openStatic();
    await admin.signIn(adminToken);
    await admin.createProduct(uniqueTitle('Sneaky'), 'data:image/png;base64,AAAA');
    await expect(admin.createForm.getByLabel('Image URL')).toHaveAccessibleDescription(
      'must be an absolute http:// or https:// URL',
    );
  });
});

test('the administrator asks for a resync and every product stays in the gallery', async ({ admin, page, baseURL }) => {
  const title = uniqueTitle('Resynced');
  await admin.open();
  await admin.signIn(adminToken);
  await admin.createProduct(title, imageUrl(baseURL));
  await expect(admin.row(title)).toBeVisible();

  await admin.page.getByRole('button', { name: 'Resync every gallery' }).click();
  await expect(admin.page.getByRole('status').filter({ hasText: 'Resync started' })).toHaveText(
    /Resync started: \d+ products on their way to every gallery\./,
  );
  await expectInGallery(page, title, true);
});

test('the form shows a preview of the image address once typing pauses, and none for a bad one', async ({ admin, baseURL }) => {
  await admin.open();
  await admin.signIn(adminToken);
  await expect(admin.signedIn).toBeVisible();
  const field = admin.createForm.getByLabel('Image URL');
  const preview = admin.createForm.locator('.preview img');
  await field.pressSequentially(imageUrl(baseURL, 'preview'), { delay: 5 });
  await expect(preview).toHaveAttribute('src', imageUrl(baseURL, 'preview'));
  await expect.poll(() => preview.evaluate((image: HTMLImageElement) => image.complete && image.naturalWidth > 0)).toBe(true);
  await field.fill('javascript:alert(1)');
  await expect(preview).toHaveCount(0);
});
