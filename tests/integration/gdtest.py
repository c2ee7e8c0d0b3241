"""Shared by the mod_global_distrib tests: regions of the domain
localhost, each a single meerkatd on its own loopback address with the
module configured against one global Redis (clustertest.Redis), and
their shutdown with the logs of a failed run."""
from modtest import Server, free_port
from clustertest import stop_nodes

SECRET = "global-distrib-test-secret-0123"


def gd_conf(name, redis, address, port, **extra):
    """The [mod_global_distrib] keys of region @name: short expiry and
    refresh, so that tests see records come and go."""
    keys = {"global_host": "localhost", "local_host": name, "redis_host": "127.0.0.1",
            "redis_port": redis.port, "secret": SECRET, "listen_address": address,
            "listen_port": port, "expire_after": 4, "refresh_after": 1,
            "queue_timeout_ms": 1500, "bounce_interval_ms": 100, "bounce_retries": 30,
            "regions": "eu;us"}
    keys.update(extra)
    return keys


def region(name, redis, address, modules=None, http=None, **extra):
    """A started region: @modules besides mod_global_distrib (default
    mod_roster), @extra its module keys. .region, .address, .link_port."""
    port = free_port()
    mods = dict(modules if modules is not None else {"mod_roster": None})
    mods["mod_global_distrib"] = gd_conf(name, redis, address, port, **extra)
    srv = Server(mods, http=http if http is not None else {})
    srv.region = name
    srv.link_port = port
    srv.address = address
    return srv


def stop_all(t, regions, *others):
    """Stops @regions (None entries skipped), with their logs when @t
    failed, then @others (Redis, Certs...)."""
    stop_nodes(t, [srv for srv in regions if srv is not None], *others)
