/**
 * The CNI spec's output formats (SPEC.md section 5, and the same section of spec-v0.3.1,
 * spec-v0.4.0 and spec-v1.0.0), written out as checkers: each returns the list of ways an object
 * breaks its format (empty when it conforms). Every result and error object the plugin prints in
 * test/cni is run through these.
 *
 * Per version: 0.3.x and 0.4.0 require `version` ("4"/"6", matching the address) in each ip;
 * 1.0.0 removed it (and removed `version` from interfaces, which never had it here); 1.1.0 adds
 * interface `mtu`, `socketPath`, `pciID` and route `mtu`, `advmss`, `priority`, `table`,
 * `scope`. Unknown keys are reported: a plugin should emit only what the version defines.
 */
import { isIP } from 'node:net';

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isUint = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function cidrFamily(text: unknown): 4 | 6 | 0 {
  if (typeof text !== 'string') return 0;
  const [addr, len, ...rest] = text.split('/');
  if (rest.length > 0 || addr === undefined || len === undefined || !/^\d{1,3}$/.test(len)) return 0;
  const f = isIP(addr);
  if (f === 0 || Number(len) > (f === 4 ? 32 : 128)) return 0;
  return f as 4 | 6;
}

function keys(o: Record<string, unknown>, allowed: readonly string[], where: string, out: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) out.push(`${where}: unexpected key ${k}`);
}

const atLeast = (v: string, min: string) => {
  const n = (s: string) => s.split('.').reduce((a, x) => a * 100 + Number(x), 0);
  return n(v) >= n(min);
};

export function resultProblems(o: unknown, version: string): string[] {
  const out: string[] = [];
  if (!isObject(o)) return ['result: not an object'];
  keys(o, ['cniVersion', 'interfaces', 'ips', 'routes', 'dns'], 'result', out);
  if (o.cniVersion !== version) out.push(`cniVersion: ${JSON.stringify(o.cniVersion)}, expected ${version}`);
  const v11 = atLeast(version, '1.1.0');
  const v10 = atLeast(version, '1.0.0');
  const interfaces = o.interfaces ?? [];
  if (!Array.isArray(interfaces)) out.push('interfaces: not a list');
  else
    interfaces.forEach((i, n) => {
      const w = `interfaces[${n}]`;
      if (!isObject(i)) {
        out.push(`${w}: not an object`);
        return;
      }
      keys(i, ['name', 'mac', 'sandbox', ...(v11 ? ['mtu', 'socketPath', 'pciID'] : [])], w, out);
      if (typeof i.name !== 'string' || i.name === '') out.push(`${w}.name: not a non-empty string`);
      if (i.mac !== undefined && (typeof i.mac !== 'string' || !MAC.test(i.mac)))
        out.push(`${w}.mac: not a MAC`);
      if (i.sandbox !== undefined && typeof i.sandbox !== 'string') out.push(`${w}.sandbox: not a string`);
      if (i.mtu !== undefined && !isUint(i.mtu)) out.push(`${w}.mtu: not a uint`);
    });
  const nIf = Array.isArray(interfaces) ? interfaces.length : 0;
  const ips = o.ips ?? [];
  if (!Array.isArray(ips)) out.push('ips: not a list');
  else
    ips.forEach((ip, n) => {
      const w = `ips[${n}]`;
      if (!isObject(ip)) {
        out.push(`${w}: not an object`);
        return;
      }
      keys(ip, ['address', 'gateway', 'interface', ...(v10 ? [] : ['version'])], w, out);
      const f = cidrFamily(ip.address);
      if (f === 0) out.push(`${w}.address: not CIDR notation`);
      if (!v10 && ip.version !== String(f))
        out.push(`${w}.version: ${JSON.stringify(ip.version)}, expected "${f}"`);
      if (ip.gateway !== undefined && isIP(String(ip.gateway)) !== f)
        out.push(`${w}.gateway: not an IPv${f} address`);
      if (ip.interface !== undefined && (!isUint(ip.interface) || (ip.interface as number) >= nIf))
        out.push(`${w}.interface: not an index into interfaces`);
    });
  const routes = o.routes ?? [];
  if (!Array.isArray(routes)) out.push('routes: not a list');
  else
    routes.forEach((r, n) => {
      const w = `routes[${n}]`;
      if (!isObject(r)) {
        out.push(`${w}: not an object`);
        return;
      }
      keys(r, ['dst', 'gw', ...(v11 ? ['mtu', 'advmss', 'priority', 'table', 'scope'] : [])], w, out);
      const f = cidrFamily(r.dst);
      if (f === 0) out.push(`${w}.dst: not CIDR notation`);
      if (r.gw !== undefined && isIP(String(r.gw)) !== f) out.push(`${w}.gw: not an IPv${f} address`);
      for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'])
        if (r[k] !== undefined && !isUint(r[k])) out.push(`${w}.${k}: not a uint`);
    });
  if (o.dns !== undefined) {
    if (!isObject(o.dns)) out.push('dns: not an object');
    else {
      keys(o.dns, ['nameservers', 'domain', 'search', 'options'], 'dns', out);
      for (const k of ['nameservers', 'search', 'options']) {
        const v = o.dns[k];
        if (v !== undefined && (!Array.isArray(v) || !v.every((x) => typeof x === 'string')))
          out.push(`dns.${k}: not a list of strings`);
      }
      if (o.dns.domain !== undefined && typeof o.dns.domain !== 'string')
        out.push('dns.domain: not a string');
    }
  }
  return out;
}

/** The error object: cniVersion, code, msg, details (SPEC.md section 5, "Error"). */
export function errorProblems(o: unknown): string[] {
  const out: string[] = [];
  if (!isObject(o)) return ['error: not an object'];
  keys(o, ['cniVersion', 'code', 'msg', 'details'], 'error', out);
  if (typeof o.cniVersion !== 'string' || o.cniVersion === '') out.push('cniVersion: not a string');
  if (!isUint(o.code) || o.code === 0) out.push('code: not a positive integer');
  if (typeof o.msg !== 'string' || o.msg === '') out.push('msg: not a non-empty string');
  if (o.details !== undefined && typeof o.details !== 'string') out.push('details: not a string');
  return out;
}

export function versionProblems(o: unknown, version: string): string[] {
  const out: string[] = [];
  if (!isObject(o)) return ['version result: not an object'];
  keys(o, ['cniVersion', 'supportedVersions'], 'version result', out);
  if (o.cniVersion !== version) out.push(`cniVersion: ${JSON.stringify(o.cniVersion)}, expected ${version}`);
  if (
    !Array.isArray(o.supportedVersions) ||
    !o.supportedVersions.every((v) => /^\d+\.\d+\.\d+$/.test(String(v)))
  )
    out.push('supportedVersions: not a list of versions');
  return out;
}
