/**
 * Opens a file store in another process, for file.test.ts to run as an unprivileged user:
 *   node open-worker.mjs DIR   -> {"opened":true} or {"code":...,"message":...} on stdout
 */
import { openFileDatastore } from '../../src/datastore/file.js';

try {
  const store = await openFileDatastore(process.argv[2]!);
  await store.close();
  process.stdout.write(`${JSON.stringify({ opened: true })}\n`);
} catch (e) {
  const err = e as { code?: string; message?: string };
  process.stdout.write(`${JSON.stringify({ code: err.code, message: err.message })}\n`);
}
