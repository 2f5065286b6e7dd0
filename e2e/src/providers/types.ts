/** What a scenario can do to one PostgreSQL node, whatever runs it. */
export interface ClusterNode {
  readonly name: string;
  readonly major: number;
  /** libpq conninfo; with `from`, the address party `from` uses (cut by `partition`). */
  conninfo(opts?: { from?: string }): string;
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<R[]>;
  /** SIGKILL of the postmaster (container: kill). */
  kill(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
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
