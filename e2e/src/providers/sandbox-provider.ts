import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import type { ClusterNode, ClusterProvider, LogicalOptions } from './types.js';

class SandboxClusterNode implements ClusterNode {
  constructor(readonly node: SandboxNode) {}
  get name(): string {
    return this.node.name;
  }
  get major(): number {
    return this.node.major;
  }
  conninfo(opts: { from?: string } = {}): string {
    return this.node.conninfo(opts);
  }
  uri(opts: { from?: string } = {}): string {
    return this.node.uri(opts);
  }
  query<R extends Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    opts: { timeoutMs?: number } = {},
  ): Promise<R[]> {
    return this.node.query<R>(sql, params, opts);
  }
  kill(): Promise<void> {
    return this.node.kill();
  }
  stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    return this.node.stop(mode);
  }
  start(): Promise<void> {
    return this.node.start();
  }
  async pause(): Promise<void> {
    this.node.pause();
  }
  async resume(): Promise<void> {
    this.node.resume();
  }
}

/** Local PostgreSQL processes from @pgfleet/sandbox. */
export class SandboxProvider implements ClusterProvider {
  readonly kind = 'sandbox' as const;
  private constructor(readonly sandbox: Sandbox) {}

  static async create(opts: { major?: number; binDir?: string } = {}): Promise<SandboxProvider> {
    return new SandboxProvider(await Sandbox.create({ name: 'e2e', ...opts }));
  }

  get major(): number {
    return this.sandbox.major;
  }

  async startPrimary(name: string, opts: LogicalOptions & { logical?: boolean } = {}): Promise<ClusterNode> {
    return new SandboxClusterNode(await this.sandbox.startNode(name, opts));
  }

  async startStandby(name: string, primary: ClusterNode): Promise<ClusterNode> {
    return new SandboxClusterNode(await this.sandbox.createStandby(name, this.sandbox.node(primary.name)));
  }

  async startLogicalNodes(names: string[], opts: LogicalOptions = {}): Promise<ClusterNode[]> {
    const nodes = await this.sandbox.startLogicalNodes(names, opts.settings);
    return nodes.map((n) => new SandboxClusterNode(n));
  }

  async partition(a: string, b: string): Promise<void> {
    this.sandbox.partition(a, b);
  }

  async heal(a: string, b: string): Promise<void> {
    this.sandbox.heal(a, b);
  }

  destroy(): Promise<void> {
    return this.sandbox.destroy();
  }
}
