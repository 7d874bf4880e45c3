// Ports for processes we cannot hand a listening socket to (Portcullis, redis-server).
//
// Picked below the kernel's ephemeral range: `listen(0)` (our Node servers, the provider) and
// outgoing connections only ever take ports inside that range, so nothing else in the run can
// take a port between this pick and the child's bind. Binding 0 and closing, as we did, let the
// next `listen(0)` get the very same port. Never the same port twice in one process.

import fs from 'node:fs';
import net from 'node:net';

const given = new Set();

function ephemeralLow() {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 32768;
  } catch {
    return 32768;
  }
}

function bindable(port, host) {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

export async function freePort(host = '127.0.0.1') {
  const below = Math.min(Math.max(ephemeralLow(), 12000), 65535);
  for (let attempt = 0; attempt < 10000; attempt += 1) {
    const port = 10000 + Math.floor(Math.random() * (below - 10000));
    if (given.has(port) || !(await bindable(port, host))) continue;
    given.add(port);
    return port;
  }
  throw new Error(`no free port on ${host} below ${below}`);
}
