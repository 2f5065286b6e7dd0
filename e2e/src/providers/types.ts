/** What a scenario can do to one PostgreSQL node, whatever runs it. */
export interface ClusterNode {
  readonly name: string;
  readonly major: number;
  /**
   * libpq conninfo. Without `from`: the direct address for processes on this host. With
   * `from`: the address party `from` uses, which `partition(from, name)` cuts (`from` may be
   * another node, whose server then connects from wherever that node runs, or any other party).
   */
  conninfo(opts?: { from?: string }): string;
  /** The same address as a postgresql:// URI (for drivers that take no key=value conninfo). */
  uri(opts?: { from?: string }): string;
  /** One statement on a fresh direct connection; `timeoutMs` bounds connect and statement. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    opts?: { timeoutMs?: number },
  ): Promise<R[]>;
  /** SIGKILL of the postmaster (container: of the whole container, like a host crash). */
  kill(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts a stopped or killed node and waits until it accepts connections. */
  start(): Promise<void>;
  /** Freezes the server (sockets stay open, nothing answers), like a hung host. */
  pause(): Promise<void>;
  resume(): Promise<void>;
}

export interface LogicalOptions {
  settings?: Record<string, string | number | boolean>;
}

/** A way to run clusters for e2e scenarios: local processes (sandbox) or containers. */
export interface ClusterProvider {
  readonly kind: 'sandbox' | 'containers';
  readonly major: number;
  startPrimary(name: string, opts?: LogicalOptions & { logical?: boolean }): Promise<ClusterNode>;
  startStandby(name: string, primary: ClusterNode): Promise<ClusterNode>;
  startLogicalNodes(names: string[], opts?: LogicalOptions): Promise<ClusterNode[]>;
  /** Cuts traffic between two parties both ways (node names, or the `from` of a conninfo). */
  partition(a: string, b: string): Promise<void>;
  heal(a: string, b: string): Promise<void>;
  destroy(): Promise<void>;
}
