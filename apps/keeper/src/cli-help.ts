import type { ProgramHelp } from '@pgfleet/cli';

/** `pgfleet-keeper --help` and `pgfleet-keeper <command> --help`. */

const URL_OPTIONS = [
  {
    flag: '--url <keeper url>',
    text: "the keeper's HTTP API (default: from --config, else http://127.0.0.1:8008)",
  },
  { flag: '-c, --config <file>', text: 'keeper config file: its http.listen and http.token are used' },
  { flag: '--json', text: 'print the result as JSON' },
];

export const KEEPER_HELP: ProgramHelp = {
  name: 'pgfleet-keeper',
  tagline: 'automatic failover and sync degrade for a PostgreSQL primary + standby',
  commands: [
    {
      name: 'run',
      summary: 'run the keeper (node or witness mode) until SIGINT/SIGTERM',
      usage: ['run --config <file.yaml> [--force] [--<key> <value>...]'],
      description:
        'Runs beside one PostgreSQL node (or as the witness with --mode witness). The keeper learns\n' +
        "its role from the server (pg_is_in_recovery()), never from config, and serves Patroni's\n" +
        'health endpoints (/primary, /replica, /health...) on http.listen. Refuses to start on the\n' +
        'configuration problems check reports (credentials refused, no password, no such host, a\n' +
        'peer.conninfo that misses the server this node replicates with).',
      options: [
        { flag: '-c, --config <file>', text: 'YAML config (or PGFLEET_KEEPER_CONFIG)' },
        { flag: '--force', text: 'start despite configuration problems (each is logged)' },
        { flag: '--<key> <value>', text: 'any configuration key, dotted or kebab-case (--interval 500ms)' },
      ],
      examples: [
        'pgfleet-keeper run --config /etc/pgfleet/keeper.yaml',
        'pgfleet-keeper run --config keeper.yaml --interval 500ms --failures 3',
        'pgfleet-keeper run --mode witness --config witness.yaml',
      ],
    },
    {
      name: 'check',
      summary: 'validate the configuration and probe the nodes once, then exit',
      usage: ['check --config <file.yaml> [--json] [--<key> <value>...]'],
      description: 'Exits 0 when the configuration is valid and every node answers, 2 otherwise.',
      options: [
        { flag: '-c, --config <file>', text: 'YAML config (or PGFLEET_KEEPER_CONFIG)' },
        { flag: '--json', text: 'print { ok, nodes: [{ key, node, role, reason }] }' },
      ],
      examples: [
        'pgfleet-keeper check --config keeper.yaml',
        'pgfleet-keeper check --config keeper.yaml --json',
      ],
    },
    {
      name: 'status',
      summary: "print a keeper's state as a table (or JSON with --json)",
      usage: ['status [--json] [--url <keeper url> | --config <file.yaml>]'],
      options: URL_OPTIONS,
      examples: [
        'pgfleet-keeper status --url http://127.0.0.1:8008',
        'pgfleet-keeper status --json --config keeper.yaml',
      ],
    },
    {
      name: 'list',
      summary: 'print every member of a cluster on etcd as one table (or JSON with --json)',
      usage: ['list --config <file.yaml> [--json]'],
      description:
        'Reads the cluster from etcd (dcs.etcd and cluster.name of the config): member, host,\n' +
        'role (leader for the member holding the leader key), state, timeline, receive and replay\n' +
        "lag behind the leader's last published position, tags. Members listed under\n" +
        'cluster.members whose keeper has no live key show as unknown.',
      options: [
        { flag: '-c, --config <file>', text: 'keeper config file with dcs.etcd' },
        { flag: '--json', text: 'print { cluster, leader, paused, members: [...] }' },
      ],
      examples: [
        'pgfleet-keeper list --config /etc/pgfleet/keeper.yaml',
        'pgfleet-keeper list --json -c keeper.yaml',
      ],
    },
    {
      name: 'history',
      summary: "print a cluster's timeline switches on etcd, with their reasons",
      usage: ['history --config <file.yaml> [--json]'],
      options: [
        { flag: '-c, --config <file>', text: 'keeper config file with dcs.etcd' },
        { flag: '--json', text: 'print [{ timeline, lsn, reason, at, leader, previousLeader }]' },
      ],
      examples: ['pgfleet-keeper history --config /etc/pgfleet/keeper.yaml'],
    },
    {
      name: 'pause',
      summary: 'stop automatic actions (promote, degrade, fence) until resume',
      usage: ['pause [--json] [--url <keeper url> | --config <file.yaml>]'],
      description:
        'With --config on etcd (dcs.etcd): pauses the whole cluster, written to etcd directly.\n' +
        'Otherwise this one keeper, over HTTP: needs the bearer token (PGFLEET_KEEPER_HTTP_TOKEN or\n' +
        'http.token from --config).',
      options: URL_OPTIONS,
      examples: [
        'pgfleet-keeper pause --config /etc/pgfleet/keeper.yaml',
        'PGFLEET_KEEPER_HTTP_TOKEN=... pgfleet-keeper pause --url http://127.0.0.1:8008',
      ],
    },
    {
      name: 'resume',
      summary: 'resume automatic actions',
      usage: ['resume [--json] [--url <keeper url> | --config <file.yaml>]'],
      description: 'Needs the bearer token: PGFLEET_KEEPER_HTTP_TOKEN or http.token from --config.',
      options: URL_OPTIONS,
      examples: ['pgfleet-keeper resume --config keeper.yaml'],
    },
    {
      name: 'switchover',
      summary: "planned handover, asked of the primary's keeper: no acknowledged write lost",
      usage: [
        'switchover [--candidate <member>] [--json] [--url <primary keeper url> | --config <file.yaml>]',
      ],
      description:
        'Fences the primary, waits until the standby replayed everything, promotes it. The old\n' +
        'primary stays fenced: turn it into a standby with `pgfleet-keeper rejoin`. On etcd\n' +
        '(dcs.etcd in --config) the leader is found in etcd, the best standby is chosen unless\n' +
        '--candidate names one, and the other standbys follow it.',
      options: [
        { flag: '--candidate <member>', text: 'on etcd: the standby to hand over to' },
        ...URL_OPTIONS,
      ],
      examples: [
        "pgfleet-keeper switchover --config keeper-a.yaml     # on the primary's keeper",
        'pgfleet-keeper switchover --candidate c --config /etc/pgfleet/keeper.yaml   # on etcd, from any node',
      ],
    },
    {
      name: 'failover',
      summary: "promote the standby now, asked of the standby's keeper",
      usage: [
        'failover [--candidate <member>] [--force] [--json] [--url <keeper url> | --config <file.yaml>]',
      ],
      description:
        'Refused while the primary answers (use switchover). Without --force only if the lag,\n' +
        'replay and sync gates pass. On etcd: --candidate names the standby to promote once no\n' +
        'member holds the leader key; any keeper of the cluster takes the request.',
      options: [
        { flag: '--candidate <member>', text: 'on etcd: the standby to promote' },
        { flag: '--force', text: 'promote even if a gate fails (acknowledged commits may be lost)' },
        ...URL_OPTIONS,
      ],
      examples: ["pgfleet-keeper failover --force --url http://127.0.0.1:8009   # on the standby's keeper"],
    },
    {
      name: 'rejoin',
      summary:
        'make this node (a failed or fenced old primary) a standby of its peer (on etcd: of the leader)',
      usage: [
        'rejoin --config <file.yaml> [--pgdata <dir>] [--bindir <dir>] [--primary-conninfo <conninfo>]',
        '       [--slot <name>] [--force] [--json]',
      ],
      description:
        'Stops the server, pg_rewind from the peer (on etcd: the member holding the leader key, through\n' +
        "its conninfo under cluster.members), keeps this node's own config files, writes standby.signal\n" +
        'and primary_conninfo, lifts the fence; then start PostgreSQL.',
      options: [
        { flag: '-c, --config <file>', text: 'keeper config of this node' },
        { flag: '--pgdata <dir>', text: 'data directory (needed when the server is down)' },
        { flag: '--bindir <dir>', text: 'where pg_rewind and pg_ctl live' },
        {
          flag: '--primary-conninfo <c>',
          text: 'what the new standby rewinds from and streams from (default: peer.conninfo; on etcd the leader)',
        },
        { flag: '--slot <name>', text: 'stream through this physical slot on the peer (created if missing)' },
        { flag: '--force', text: 'rewind even an unfenced primary, discarding its writes' },
        { flag: '--json', text: 'print the plan and its outcome as JSON' },
      ],
      examples: ['pgfleet-keeper rejoin --config keeper.yaml --pgdata /var/lib/postgresql/15/main'],
    },
  ],
  globalOptions: [
    { flag: '-h, --help', text: 'help (of one command: pgfleet-keeper <command> --help)' },
    { flag: '-V, --version', text: 'print the version and exit' },
    { flag: '--log-format <f>', text: 'auto (readable on a terminal, JSON otherwise) | pretty | json' },
    { flag: '--log-level <l>', text: 'trace | debug | info | warn | error | fatal | silent' },
  ],
  footer: `Configuration: YAML file (--config or PGFLEET_KEEPER_CONFIG), then PGFLEET_KEEPER_<KEY>
environment variables, then --<key> flags; each later source wins. Every key is accepted in
all three forms (e.g. peer.keeperUrl: PGFLEET_KEEPER_PEER_KEEPER_URL, --peer-keeper-url).

Exit codes:
  0  success
  1  runtime failure (keeper stopped on an error, keeper unreachable, request refused,
     rejoin refused or failed)
  2  bad configuration or usage, or check found a problem (the message names the key,
     flag or node)
`,
};
