-- prosody.cfg.lua for tools/bench/bench-peers (@DIR@: the run's temporary
-- directory, @PORT@: the c2s port). Every setting is commented with
-- why: each one changes the figures.

-- Own data, pid file and log: nothing of the system's installation.
data_path = "@DIR@/data"
pidfile = "@DIR@/prosody.pid"
-- Errors only: info and debug log lines per login cost CPU.
log = { error = "@DIR@/prosody.err" }

-- Plain TCP c2s on loopback, on its own port; nothing else listens.
c2s_ports = { @PORT@ }
c2s_interfaces = { "127.0.0.1" }
-- A burst of connects overflows the default 128-entry accept queue; each
-- lost SYN costs 1-30 s.
network_settings = { tcp_backlog = 4096 }

-- No TLS: PLAIN over plain TCP must be allowed explicitly.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

-- Passwords stored in plain text, checked with a compare (the default,
-- internal_hashed, derives SCRAM keys on every PLAIN login).
authentication = "internal_plain"
-- Flat files under data_path, Prosody's default store.
storage = "internal"

-- The modules a client of the benchmark touches. mod_limits (the c2s
-- rate limit) is not loaded; s2s and tls are autoloaded modules and are
-- disabled.
modules_enabled = { "roster", "saslauth", "disco", "ping", "register", "posix" }
modules_disabled = { "s2s", "tls" }

-- In-band registration open (it is how accounts are provisioned), without
-- throttling (no registration_throttle_max / min_seconds_between_
-- registrations: mod_register_limits then throttles nobody) and from
-- every source address the generator uses.
allow_registration = true
registration_allowlist = { "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5" }

VirtualHost "localhost"
