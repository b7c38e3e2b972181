/**
 * The BGP listener (RFC 4271 §8.2.1: the passive side of a session's TCP connection): one TCP
 * server on the configured address and port, IPv4 and IPv6. Each connection is handed over paused,
 * before a byte is read or written, so the speaker can close one from an address that is not a
 * configured neighbor without an OPEN or an FSM (DESIGN.md "Only configured peers get a session").
 *
 * The default address '::' takes both families (dual stack); on a host without IPv6 it falls back
 * to '0.0.0.0', with a warning. Port 0 asks the kernel for a free port (tests): `port` says which.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface ListenerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export class Listener {
  private server: Server | undefined;
  private bound: number | null = null;

  constructor(
    private readonly log: ListenerLog,
    private readonly onConnection: (sock: Socket) => void,
  ) {}

  /** The port bound, once listening. */
  get port(): number | null {
    return this.bound;
  }

  async listen(address: string, port: number): Promise<void> {
    const make = () => createServer({ pauseOnConnect: true }, (sock) => this.onConnection(sock));
    const bind = (srv: Server, host: string) =>
      new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen({ host, port, ipv6Only: false }, () => {
          srv.off('error', reject);
          resolve();
        });
      });
    let server = make();
    try {
      await bind(server, address);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // '::' on a host without IPv6: every IPv4 address is the next best thing.
      if (address !== '::' || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
      this.log.warn({ code }, 'no IPv6 on this host: listening on 0.0.0.0 (IPv4 only)');
      server = make();
      await bind(server, '0.0.0.0');
    }
    server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
    const a = server.address();
    this.bound = typeof a === 'object' && a ? a.port : port;
    this.server = server;
    this.log.info({ address, port: this.bound }, 'listening for BGP connections');
  }

  close(): void {
    this.server?.close();
    this.server = undefined;
  }
}
