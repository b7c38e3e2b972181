/**
 * fast-check, for every test file (vitest.config.ts setupFiles): an arbitrary given a maxLength
 * (or maxDepth) generates up to it. Left alone, fast-check sizes such an arbitrary 'small' and
 * `fc.array(x, { maxLength: 100 })` makes arrays of at most 10: property tests that asked for
 * tables, queues, rule lists and byte strings of up to hundreds or thousands of entries got ten,
 * short of the growths, collisions and long runs they were written to reach. The prefix index's
 * test (up to 800 operations) missed a growth that drops a table's last bucket once it is past 32
 * buckets in three runs out of three, and caught it in three with this; the attribute table's
 * hash-table test caught none of three mutations until its arrays were sized 'max'.
 */
import fc from 'fast-check';

fc.configureGlobal({ ...fc.readConfigureGlobal(), defaultSizeToMaxWhenMaxSpecified: true });
