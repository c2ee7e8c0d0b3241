"""A throwaway PostgreSQL for the storage tests (tests/pg-tmp.sh), and a
private meerkatd moved onto it. Standard library only."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

from modtest import TOP_BUILDDIR, TOP_SRCDIR, Server, Tap


class Pg:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mk-pg.")
        out = subprocess.run(["/bin/sh", os.path.join(TOP_SRCDIR, "tests", "pg-tmp.sh"), "start",
                              self.dir, str(os.getpid())], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        self.port = int(out.stdout.strip().splitlines()[-1])
        self.bindir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        self.bindir = os.path.join("/usr/lib/postgresql", self.bindir, "bin")

    def _as_owner(self, argv):
        if os.getuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        subprocess.run(argv, check=True, capture_output=True)

    def down(self):
        self._as_owner([os.path.join(self.bindir, "pg_ctl"), "stop", "-w", "-m", "fast", "-D",
                        os.path.join(self.dir, "data")])

    def up(self):
        self._as_owner([os.path.join(self.bindir, "pg_ctl"), "start", "-w", "-t", "60", "-D",
                        os.path.join(self.dir, "data"), "-l",
                        os.path.join(self.dir, "server.log"), "-o",
                        "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" %
                        (self.port, self.dir)])

    def sql(self, statement):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "meerkat",
                              "-At", "-c", statement, "meerkat"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def stop(self):
        subprocess.run(["/bin/sh", os.path.join(TOP_SRCDIR, "tests", "pg-tmp.sh"), "stop",
                        self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def on_pgsql(srv, pg):
    """Restarts @srv with its storage on @pg."""
    srv.restart(lambda conf: conf.replace(
        "driver = sqlite3\ndatabase = meerkat.db\n",
        "driver = pgsql\nhost = 127.0.0.1\nport = %d\nuser = meerkat\n"
        "database = meerkat\n" % pg.port))


def run(what, modules, scenarios):
    """A test program: a throwaway PostgreSQL and a meerkatd with @modules
    on it, then scenarios(t, srv, pg) as one scenario group; TAP out.
    Skipped without PostgreSQL."""
    t = Tap()
    if not os.path.isdir("/usr/lib/postgresql"):
        print("1..0 # SKIP no PostgreSQL")
        return
    pg = srv = None
    try:
        pg = Pg()
        srv = Server(modules)
        on_pgsql(srv, pg)
    except Exception as e:
        t.ok(False, "meerkatd with %s on PostgreSQL starts" % what)
        t.diag(e)
        if srv:
            srv.stop()
        if pg:
            pg.stop()
        t.done()
    try:
        t.run("pgsql", scenarios, srv, pg)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
        pg.stop()
    t.done()
