// A Node tier adapter over real Redis, written against the documented
// adapter interface (bindings-wasm/js/adapters.js, docs/wasm.md): getMany,
// setMany, deleteMany, add. A minimal RESP2 client over one socket (no
// dependency): commands are pipelined, replies matched in order.
import net from 'node:net';

export class RespClient {
  #socket;
  #buffer = Buffer.alloc(0);
  #waiting = [];
  #ready;

  constructor(url) {
    const u = new URL(url);
    this.db = Number(u.pathname.slice(1) || 0);
    this.#socket = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
    this.#socket.on('data', (chunk) => this.#onData(chunk));
    this.#socket.on('error', (error) => this.#failAll(error));
    this.#socket.on('close', () => this.#failAll(new Error('redis connection closed')));
    this.#ready = new Promise((resolve, reject) => {
      this.#socket.once('connect', resolve);
      this.#socket.once('error', reject);
    }).then(() => (this.db ? this.command('SELECT', String(this.db)) : 'OK'));
  }

  #failAll(error) {
    for (const w of this.#waiting.splice(0)) w.reject(error);
  }

  #onData(chunk) {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const parsed = parseReply(this.#buffer, 0);
      if (parsed === undefined) return;
      const [reply, end] = parsed;
      this.#buffer = this.#buffer.subarray(end);
      const w = this.#waiting.shift();
      if (reply instanceof Error) w.reject(reply);
      else w.resolve(reply);
    }
  }

  /** Sends one command (strings or byte arrays); resolves with its reply (bulk strings as Buffers). */
  command(...args) {
    const parts = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const b = typeof a === 'string' ? Buffer.from(a, 'utf8') : Buffer.from(a);
      parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
    }
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#socket.write(Buffer.concat(parts));
    });
  }

  async ready() {
    await this.#ready;
  }

  close() {
    this.#socket.end();
  }
}

function parseReply(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('latin1', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return undefined;
      return [Buffer.from(buf.subarray(next, next + n)), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, p);
        if (item === undefined) return undefined;
        items.push(item[0]);
        p = item[1];
      }
      return [items, p];
    }
    default:
      return [new Error(`unexpected RESP type ${type}`), next];
  }
}

/** A stratacache tier adapter over Redis (MGET, SET PX, SET NX PX, DEL). */
export function redisTier(client, { name = 'redis', itemLimit, keyPrefix = '' } = {}) {
  return {
    name,
    kind: 'redis',
    ...(itemLimit ? { itemLimit } : {}),
    async getMany(keys) {
      if (keys.length === 0) return [];
      const values = await client.command('MGET', ...keys.map((k) => keyPrefix + k));
      return values.map((v) => (v === null ? null : new Uint8Array(v)));
    },
    async setMany(entries) {
      await Promise.all(
        entries.map((e) =>
          e.ttlMs === null || e.ttlMs === undefined
            ? client.command('SET', keyPrefix + e.key, e.value)
            : client.command('SET', keyPrefix + e.key, e.value, 'PX', String(Math.max(1, Math.ceil(e.ttlMs)))),
        ),
      );
    },
    async deleteMany(keys) {
      if (keys.length) await client.command('DEL', ...keys.map((k) => keyPrefix + k));
    },
    async add(entries) {
      const replies = await Promise.all(
        entries.map((e) => client.command('SET', keyPrefix + e.key, e.value, 'NX', 'PX', String(Math.max(1, Math.ceil(e.ttlMs ?? 60_000))))),
      );
      return replies.map((r) => r === 'OK');
    },
  };
}
