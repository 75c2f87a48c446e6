// A fake WebSocket for the live client's tests: records what the client sends and lets the
// test play the server.

import type { SocketLike } from '../src/live';

export class FakeSocket implements SocketLike {
  static instances: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.instances.push(this);
  }

  static reset(): void {
    FakeSocket.instances = [];
  }

  static last(): FakeSocket {
    const s = FakeSocket.instances[FakeSocket.instances.length - 1];
    if (!s) throw new Error('no socket');
    return s;
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason } as { code?: number; reason?: string };
    this.readyState = 3;
  }

  // ---- the server's side ----
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(msg: unknown): void {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }

  hello(extra: Record<string, unknown> = {}): void {
    this.receive({
      type: 'hello',
      protocol: 1,
      scope: 'tenant',
      tenant: 'demo',
      role: 'operator',
      server_time: '2026-12-04T10:00:00.000000Z',
      ...extra,
    });
  }

  serverClose(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }

  sentOfType(type: string): Record<string, unknown>[] {
    return this.sent.filter((m) => m['type'] === type);
  }
}
