/**
 * The `twill` command line: a table of subcommands, each in src/cli/<name>.ts, each returning an
 * exit code. Errors a user can fix (bad flags, a bad file) are printed as one line on stderr with
 * exit code 2; anything else is a bug and prints its stack.
 */
import { policyCommand } from './cli/policy.js';
import { routesCommand } from './cli/routes.js';
import { speakerCommand } from './cli/speaker.js';
import { statusCommand } from './cli/status.js';
import { UsageError } from './cli/usage.js';

type Command = {
  summary: string;
  run: (args: string[]) => Promise<number>;
};

const commands: Record<string, Command> = {
  agent: {
    summary: 'run the node agent: IPAM, BGP mesh, routes and policy (agent --help for options)',
    run: async (args) => (await import('./cli/agent.js')).agentCommand(args),
  },
  'cni-install': {
    summary: 'install the CNI plugin, its Node and the conflist on the host (the init container)',
    run: async (args) => (await import('./cli/cni-install.js')).cniInstallCommand(args),
  },
  lab: {
    summary: 'a pod network on this machine from a containerlab file, in namespaces (lab --help)',
    run: async (args) => (await import('./cli/lab.js')).labCommand(args),
  },
  speaker: { summary: 'run a standalone BGP speaker (speaker --config FILE)', run: speakerCommand },
  routes: {
    summary: 'show the Loc-RIB with every path and why the best won (routes [--json] [--prefix P])',
    run: routesCommand,
  },
  status: { summary: 'show BGP peers of a running Twill (status [--json] [--api ADDR])', run: statusCommand },
  ipam: {
    summary:
      'show pools, blocks, per-node use and leaked addresses; check finds inconsistencies (ipam [check] [--json])',
    // Loaded when used: it brings the Kubernetes client, which no other command needs.
    run: async (args) => (await import('./cli/ipam.js')).ipamCommand(args),
  },
  policy: {
    summary: 'render NetworkPolicy to ipset/iptables input (policy render --state FILE)',
    run: policyCommand,
  },
  version: {
    summary: 'print the version',
    run: async () => {
      process.stdout.write(`twill ${VERSION}\n`);
      return 0;
    },
  },
};

export const VERSION = '0.1.0';

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: twill <command> [options]\n\ncommands:\n${rows.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`twill: unknown command ${JSON.stringify(name)}\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`twill ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
