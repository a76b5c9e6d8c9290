// Playwright set-up for live-gallery's end-to-end tests.
//
// Playwright starts the already-built server (`cargo leptos build` first) on embedded defaults:
// fresh SQLite files under target/e2e/ and the in-process bus. It drives Debian's Chromium, never
// a downloaded browser.
import { defineConfig } from '@playwright/test';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..');
const port = Number(process.env.E2E_PORT ?? 3100);
mkdirSync(join(root, 'target', 'e2e'), { recursive: true });
// Playwright loads this file in every worker: keep one data directory per run.
process.env.E2E_DATA_DIR ??= mkdtempSync(join(root, 'target', 'e2e', 'run-'));
const dataDir = process.env.E2E_DATA_DIR;
export const adminToken = (process.env.E2E_ADMIN_TOKEN ??= `e2e-${Date.now()}-${randomUUID()}`);

export default defineConfig({
  testDir: './tests',
  fullyParallel: true,
  workers: 2,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 30_000,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      // Keep Chromium off the network: this machine reaches only package registries.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
  webServer: {
    command: process.env.E2E_SERVER_BIN ?? 'target/debug/server',
    cwd: root,
    url: `http://127.0.0.1:${port}/readyz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: 'target/site',
      CATALOG_DATABASE_URL: `sqlite://${dataDir}/catalog.db`,
      WEB_DATABASE_URL: `sqlite://${dataDir}/web.db`,
      ADMIN_TOKEN: adminToken,
      AMQP_URL: '',
      // Every browser of the suite signs in from one address, many times a minute under
      // --repeat-each; the sign-in limit has an integration test of its own.
      RATE_LIMIT_SIGN_INS_PER_MINUTE: '0',
      RUST_LOG: 'info',
    },
  },
});
