import type { OptionHelp, ProgramHelp } from '@pgfleet/cli';

/** `pgfleet-mm --help` and `pgfleet-mm <command> --help`. */

const CONFIG: OptionHelp = { flag: '-c, --config <file>', text: 'YAML config (or PGFLEET_MM_CONFIG)' };
const JSON_OUT: OptionHelp = { flag: '--json', text: 'machine-readable output' };

export const MM_HELP: ProgramHelp = {
  name: 'pgfleet-mm',
  tagline: 'bidirectional mesh replication for stock PostgreSQL 15+',
  commands: [
    {
      name: 'init',
      summary: 'check every node and create publications, slots, origins, schema pgfleet',
      usage: ['init -c <mesh.yaml> [--json]'],
      description:
        'Checks every node first (wal_level, slots, senders, commit timestamps, keys, identical\n' +
        'columns, row filters) and reports every problem at once; creates nothing unless all pass.\n' +
        'Idempotent: run it again after adding tables to the config.',
      options: [CONFIG, JSON_OUT],
      examples: ['pgfleet-mm init -c mesh.yaml'],
    },
    {
      name: 'run',
      summary:
        'stream and apply every edge (or those into one node) until SIGINT/SIGTERM (HTTP /health /status /metrics)',
      usage: ['run -c <mesh.yaml> [--node <name>] [--listen <host:port>|off]'],
      options: [
        CONFIG,
        {
          flag: '--node <name>',
          text: 'drive only the edges into this node (run one per node, beside its server); default: every edge',
        },
        { flag: '--listen <host:port>', text: "HTTP listen address ('off' disables; http.listen)" },
      ],
      examples: [
        'pgfleet-mm run -c mesh.yaml --listen 127.0.0.1:9187',
        'pgfleet-mm run -c mesh.yaml --node paris',
      ],
    },
    {
      name: 'status',
      summary:
        'per-edge slot lag, applied LSN, conflicts, paused transactions, holder; failover readiness of primary + standby nodes',
      usage: ['status -c <mesh.yaml> [--json]'],
      options: [CONFIG, JSON_OUT],
      examples: ['pgfleet-mm status -c mesh.yaml', 'pgfleet-mm status -c mesh.yaml --json'],
    },
    {
      name: 'check',
      summary: 'compare per-table checksums across nodes and name differing keys',
      usage: ['check -c <mesh.yaml> [--json]'],
      description: 'Exits 4 when a table differs between nodes.',
      options: [CONFIG, JSON_OUT],
      examples: ['pgfleet-mm check -c mesh.yaml'],
    },
    {
      name: 'conflicts',
      summary: 'list recorded conflicts on every node',
      usage: ['conflicts -c <mesh.yaml> [--limit <n>] [--json]'],
      options: [CONFIG, { flag: '--limit <n>', text: 'newest rows per node (default 50)' }, JSON_OUT],
      examples: ['pgfleet-mm conflicts -c mesh.yaml --limit 20'],
    },
    {
      name: 'skip',
      summary: 'skip the transaction that paused an edge',
      usage: ['skip -c <mesh.yaml> --edge <a->b> --lsn <commit lsn> [--json]'],
      description:
        'The paused edge records the transaction in pgfleet.dead_letters and moves past it on its\n' +
        'next retry. Find the LSN in `pgfleet-mm status` or pgfleet.dead_letters.',
      options: [
        CONFIG,
        { flag: '--edge <a->b>', text: 'the paused edge (source->target)' },
        { flag: '--lsn <lsn>', text: 'commit LSN of the transaction to skip' },
        JSON_OUT,
      ],
      examples: ['pgfleet-mm skip -c mesh.yaml --edge a->b --lsn 0/16B3748'],
    },
    {
      name: 'dead-letters',
      summary: 'list transactions that were not applied, or replay one once its cause is fixed',
      usage: [
        'dead-letters -c <mesh.yaml> [--node <name>] [--all] [--limit <n>] [--json]',
        'dead-letters -c <mesh.yaml> --replay <node:id> [--json]',
      ],
      description:
        'Lists pgfleet.dead_letters of every node (or --node), newest first: each skipped transaction\n' +
        'with its LSN, xid, action and number of recorded changes. --replay applies one on its node as\n' +
        "its source transaction would have been (each change under its table's conflict policy, with\n" +
        'the source commit time), all or nothing, once.',
      options: [
        CONFIG,
        { flag: '--node <name>', text: 'only this node (or the node of a bare --replay id)' },
        { flag: '--all', text: 'also those already applied, skipped again or replayed' },
        { flag: '--limit <n>', text: 'newest rows per node (default 50)' },
        { flag: '--replay <node:id>', text: 'apply this recorded transaction (node:id as listed)' },
        JSON_OUT,
      ],
      examples: [
        'pgfleet-mm dead-letters -c mesh.yaml',
        'pgfleet-mm dead-letters -c mesh.yaml --replay b:12',
      ],
    },
    {
      name: 'add-node',
      summary: 'join a new, empty node to the running mesh (snapshot copy, then stream)',
      usage: ['add-node -c <mesh.yaml> --node <name> [--source <node>] [--json]'],
      description:
        'The node must be in the config with the same tables, empty. Its data is copied from an\n' +
        'exported snapshot and streaming starts at the snapshot LSN: no gap, no duplicate.',
      options: [
        CONFIG,
        { flag: '--node <name>', text: 'the node to add' },
        { flag: '--source <node>', text: 'copy from this node (default: the first suitable one)' },
        JSON_OUT,
      ],
      examples: ['pgfleet-mm add-node -c mesh.yaml --node d --source a'],
    },
    {
      name: 'remove-node',
      summary: 'drop every slot, publication and origin of a node on all reachable nodes',
      usage: ['remove-node -c <mesh.yaml> --node <name> [--json]'],
      options: [CONFIG, { flag: '--node <name>', text: 'the node to remove' }, JSON_OUT],
      examples: ['pgfleet-mm remove-node -c mesh.yaml --node d'],
    },
    {
      name: 'sequences',
      summary: 'node-unique sequence offsets for replicated columns (dry run unless --apply)',
      usage: ['sequences -c <mesh.yaml> [--apply] [--stride <n>] [--json]'],
      options: [
        CONFIG,
        { flag: '--apply', text: 'change the sequences (default: print the plan)' },
        { flag: '--stride <n>', text: "step between a node's values (default: number of nodes)" },
        JSON_OUT,
      ],
      examples: [
        'pgfleet-mm sequences -c mesh.yaml',
        'pgfleet-mm sequences -c mesh.yaml --apply --stride 10',
      ],
    },
  ],
  globalOptions: [
    { flag: '-h, --help', text: 'help (of one command: pgfleet-mm <command> --help)' },
    { flag: '-V, --version', text: 'print the version and exit' },
    { flag: '--log-format <f>', text: 'auto (readable on a terminal, JSON otherwise) | pretty | json' },
    { flag: '--log-level <l>', text: 'trace | debug | info | warn | error | fatal | silent' },
    { flag: '--<key> <value>', text: 'any configuration key, kebab-case or dotted (--apply-batch-rows 500)' },
  ],
  footer: `Configuration: YAML file (--config or PGFLEET_MM_CONFIG), then PGFLEET_MM_<KEY> environment
variables, then --<key> flags; each later source wins (see apps/multimaster/README.md for every
key). PGFLEET_MM_NODE_<NAME>_CONNINFO / _RANK replace one node's conninfo / rank, so passwords
can stay out of the file.

Exit codes:
  0  success
  1  runtime failure (a node unreachable, the replicator stopped on an error)
  2  bad command line or configuration (the message names the key, flag or node)
  3  a precondition is not met, nothing was created or changed: init found problems on the
     nodes, add-node or sequences found the mesh not ready
  4  check found tables that differ between nodes
`,
};
