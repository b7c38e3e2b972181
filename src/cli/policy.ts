/**
 * `twill policy render --state FILE [--format text|json]`: what the node named in FILE would
 * program for NetworkPolicy. (Filled in by the NetworkPolicy compiler.)
 */
export async function policyCommand(_args: string[]): Promise<number> {
  process.stderr.write('twill policy: not built yet\n');
  return 2;
}
