/**
 * What the benchmarks read of a process from Linux's /proc (proc(5)): its CPU time, user and
 * system, over all its threads, from /proc/PID/stat. The kernel counts it in ticks of USER_HZ,
 * 100 a second on Linux, so one reading is good to 10 ms.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: the ticks of /proc/PID/stat's times per second. */
export const CLK_TCK = 100;

/** `pid`'s CPU seconds so far (utime + stime); NaN once it has exited. */
export function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return Number.NaN;
  }
  // The fields after the command name, which may hold spaces and parentheses: utime and stime
  // are the 14th and 15th of stat(5), the 12th and 13th after it.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
