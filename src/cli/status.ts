/**
 * `twill status [--json] [--api ADDR]`: the peers of a running speaker (or agent), as a table
 * like `calicoctl node status`, or as the JSON the local API serves (src/bgp/status.ts), for
 * scripts. ADDR defaults to the speaker's default API socket.
 */
import { getJson } from '../api/http.js';
import { ConfigError, DEFAULT_API_SOCKET, formatApiAddress, parseApiAddress } from '../bgp/config.js';
import type { SpeakerStatus } from '../bgp/status.js';
import { formatStatus } from './status-format.js';
import { UsageError } from './usage.js';

export async function statusCommand(args: string[]): Promise<number> {
  let json = false;
  let api = DEFAULT_API_SOCKET;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '--api') {
      const v = args[++i];
      if (v === undefined) throw new UsageError('--api needs an address: a unix socket path or HOST:PORT');
      api = v;
    } else
      throw new UsageError(`unknown option ${JSON.stringify(a)}; usage: twill status [--json] [--api ADDR]`);
  }
  let address: ReturnType<typeof parseApiAddress>;
  try {
    address = parseApiAddress(api, '--api');
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  let status: SpeakerStatus;
  try {
    status = (await getJson(address, '/status')) as SpeakerStatus;
  } catch (err) {
    process.stderr.write(
      `twill status: no Twill answering at ${formatApiAddress(address)}: ${(err as Error).message}\n`,
    );
    return 1;
  }
  process.stdout.write(json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, new Date()));
  return 0;
}
