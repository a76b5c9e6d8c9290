// The server-rendered pages hydrate and respond to the person using them.
import { adminToken } from '../playwright.config';
import { expect, test } from './fixtures/test';

test('the gallery is rendered on the server and becomes interactive', async ({ gallery, page }) => {
  await gallery.open();
  await expect(gallery.heading).toBeVisible();
  await expect(gallery.emptyState.or(gallery.cards.first())).toBeVisible();
  await expect(page).toHaveTitle('live-gallery');
});

test('the token field can be revealed and hidden again once the page is interactive', async ({ admin }) => {
  await admin.open();
  await admin.token.fill('typed secret');
  await expect(admin.token).toHaveAttribute('type', 'password');
  await expect(admin.revealToggle).toHaveAttribute('aria-pressed', 'false');

  await admin.revealToggle.click();
  await expect(admin.token).toHaveAttribute('type', 'text');
  await expect(admin.revealToggle).toHaveAttribute('aria-pressed', 'true');
  await expect(admin.revealToggle).toHaveText('Hide token');

  await admin.revealToggle.click();
  await expect(admin.token).toHaveAttribute('type', 'password');
  await expect(admin.token).toHaveValue('typed secret');
});

test.describe('a refused sign-in', () => {
  test('a wrong token is refused with a clear message', async ({ admin }) => {
    await admin.open();
    await admin.signIn('definitely-not-the-token');
    await expect(admin.alert).toHaveText('That token is not right.');
    await expect(admin.signedIn).toBeHidden();
  });
});

test('the administrator signs in and out', async ({ admin, page }) => {
  await admin.open();
  await admin.signIn(adminToken);
  await expect(admin.signedIn).toBeVisible();

  const cookies = await page.context().cookies();
  const session = cookies.find((cookie) => cookie.name === 'lg_admin');
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe('Strict');
  expect(await page.evaluate(() => document.cookie)).not.toContain('lg_admin');

  await page.reload();
  await expect(admin.signedIn).toBeVisible();
  await admin.signOutButton.click();
  await expect(admin.token).toBeVisible();
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the administrator can still sign in', async ({ admin }) => {
    await admin.openStatic();
    await admin.signIn(adminToken);
    await expect(admin.signedIn).toBeVisible();
  });

  test('a wrong token still gets a clear message', async ({ admin }) => {
    await admin.openStatic();
    await admin.signIn('definitely-not-the-token');
    await expect(admin.alert).toHaveText('That token is not right.');
  });
});
